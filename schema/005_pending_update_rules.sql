-- 005: a change scheduled for the period end (pending_update) exists only
-- on a subscription whose period end will apply it: never on one that is
-- canceled, paused or set to cancel at its period end (docs/billing.md,
-- "Changes in the middle of a period").
--
-- Before this, such changes were kept: a period-end cancel left its
-- scheduled change on the ended subscription for good, and a pause carried
-- it over to the end of the first period after the resume, a date nobody
-- was told. Each is dropped here, as the invoice worker now drops it (a
-- cancel wins) or refuses to leave it behind (a pause), and the constraint
-- keeps it so.

-- Billow's own correction, not a person's: no audit event (see
-- audit_by_a_person in 003).
SELECT set_config('app.job', '{"actor": "system"}', true);

UPDATE subscriptions SET pending_update = NULL, updated_at = now()
 WHERE pending_update IS NOT NULL
   AND (status IN ('paused', 'canceled') OR cancel_at_period_end);

ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_pending_update_applies
  CHECK (pending_update IS NULL OR (status NOT IN ('paused', 'canceled') AND NOT cancel_at_period_end));
