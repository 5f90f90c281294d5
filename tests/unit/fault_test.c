/* fault_test: parsing of BILLOW_FAULTS and which arrival at a point crashes. */
#include <criterion/criterion.h>
#include <signal.h>

#include "fault.h"

Test(fault, only_the_nth_arrival_at_a_counted_point_fires)
{
    fault_init("a,b:3");
    cr_assert_not(fault_hit("b"));
    cr_assert_not(fault_hit("b"));
    cr_assert(fault_hit("b"));
    cr_assert_not(fault_hit("b"), "a point fires once");
}

Test(fault, a_point_without_a_count_fires_on_the_first_arrival)
{
    fault_init("a,b:3");
    cr_assert(fault_hit("a"));
    cr_assert_not(fault_hit("a"));
}

Test(fault, points_not_listed_never_fire)
{
    fault_init("a,b:3");
    for (int i = 0; i < 5; i++) {
        cr_assert_not(fault_hit("c"));
        cr_assert_not(fault_hit("b:3"));
        cr_assert_not(fault_hit(""));
    }
}

Test(fault, an_empty_or_missing_list_arms_nothing)
{
    fault_init(NULL);
    cr_assert_not(fault_hit("a"));
    fault_init("");
    cr_assert_not(fault_hit("a"));
    fault_point("a");
}

Test(fault, init_again_resets_the_counts)
{
    fault_init("b:2");
    cr_assert_not(fault_hit("b"));
    fault_init("b:2");
    cr_assert_not(fault_hit("b"));
    cr_assert(fault_hit("b"));
}

Test(fault, fault_point_survives_until_the_nth_arrival_and_then_is_killed, .signal = SIGKILL)
{
    fault_init("worker.after_commit:3");
    fault_point("worker.before_commit");
    fault_point("worker.after_commit");
    fault_point("worker.after_commit");
    fault_point("worker.after_commit");
    cr_assert_fail("the third arrival should have killed the process");
}

Test(fault, a_zero_count_is_bad_configuration, .exit_code = 1)
{
    fault_init("a:0");
    cr_assert_fail("init should have exited");
}

Test(fault, a_non_numeric_count_is_bad_configuration, .exit_code = 1)
{
    fault_init("a:x");
    cr_assert_fail("init should have exited");
}

Test(fault, an_empty_point_name_is_bad_configuration, .exit_code = 1)
{
    fault_init("a,,b");
    cr_assert_fail("init should have exited");
}

Test(fault, too_many_points_are_bad_configuration, .exit_code = 1)
{
    fault_init("p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,p10,p11,p12,p13,p14,p15,p16");
    cr_assert_fail("init should have exited");
}
