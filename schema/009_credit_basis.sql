-- 009: every line that charges or credits a subscription item says which
-- item and which of its billing periods it is for, so a credit for unused
-- time can be held to what that period actually charged for the item
-- (docs/billing.md, "Credits pay back only what was charged").
--
-- Before this, a credit was the list price of the unused time whatever had
-- been charged: a first part period made free (`proration_behavior: none`),
-- an item added or an anchor moved later without a charge were paid back at
-- a cancel, a pause or a change as if they had been billed.
--
-- subscription_item_id: the subscription item (si_…) the line charges or
-- credits; null for lines that are not an item's (and none are yet).
-- subscription_period_start: the start of the subscription's billing period
-- the line belongs to (current_period_start when it was made). A period's
-- start never moves while it runs (a new anchor moves only its end), so it
-- names the period; the line's own span may reach past it (the days a later
-- anchor adds) or lie after its end (a credit for the days an earlier anchor
-- took away).
ALTER TABLE invoice_lines ADD COLUMN IF NOT EXISTS subscription_item_id text,
  ADD COLUMN IF NOT EXISTS subscription_period_start timestamptz;
ALTER TABLE invoice_items ADD COLUMN IF NOT EXISTS subscription_item_id text,
  ADD COLUMN IF NOT EXISTS subscription_period_start timestamptz;

-- The lines and pending items made before: those of each subscription's
-- current period are given its start and the item that holds their price
-- now (a subscription holds a price once), or its one item whatever the
-- price (an item keeps its id through a change of price), so the credits
-- of periods already running count what they charged. A charge is the
-- period's when its span starts in it (an anchor moved earlier shortens the
-- period, not the line that paid for it). A credit of the current period
-- lies within its span, but a credit made in the period before can too (a
-- pause's credit for [Apr 10, May 1) taken in by a resume that starts the
-- period on Apr 10), so a credit is counted only when it was made after
-- the period began: on an invoice created since, and not from a pending
-- item made before. What is left out only leaves a cap looser, never a
-- credit short. Lines of ended periods are never asked about again and
-- stay null.
UPDATE invoice_lines l
   SET subscription_item_id = si.id, subscription_period_start = s.current_period_start
  FROM invoices i
  JOIN subscriptions s ON s.tenant_id = i.tenant_id AND s.id = i.subscription_id
  JOIN subscription_items si ON si.tenant_id = s.tenant_id AND si.subscription_id = s.id
 WHERE l.tenant_id = i.tenant_id AND l.invoice_id = i.id
   AND (si.price_id = l.price_id
        OR (SELECT count(*) FROM subscription_items x
             WHERE x.tenant_id = s.tenant_id AND x.subscription_id = s.id) = 1)
   AND l.type IN ('subscription', 'proration')
   AND s.current_period_start IS NOT NULL
   AND l.period_start >= s.current_period_start AND l.period_start < s.current_period_end
   AND (l.amount >= 0
        OR (l.period_end <= s.current_period_end AND i.created_at > s.current_period_start
            AND NOT EXISTS (SELECT 1 FROM invoice_items ii
                             WHERE ii.tenant_id = i.tenant_id AND ii.invoice_id = i.id
                               AND ii.created_at <= s.current_period_start)));

UPDATE invoice_items ii
   SET subscription_item_id = si.id, subscription_period_start = s.current_period_start
  FROM subscriptions s
  JOIN subscription_items si ON si.tenant_id = s.tenant_id AND si.subscription_id = s.id
 WHERE s.tenant_id = ii.tenant_id AND s.id = ii.subscription_id
   AND ii.invoice_id IS NULL
   AND (si.price_id = ii.price_id
        OR (SELECT count(*) FROM subscription_items x
             WHERE x.tenant_id = s.tenant_id AND x.subscription_id = s.id) = 1)
   AND s.current_period_start IS NOT NULL
   AND ii.period_start >= s.current_period_start AND ii.period_start < s.current_period_end
   AND (ii.amount >= 0
        OR (ii.period_end <= s.current_period_end AND ii.created_at > s.current_period_start));
