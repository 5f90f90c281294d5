-- Refunds that fail after they were counted.
--
-- A payment's amount_refunded is worked out from its refunds and from
-- Stripe's own total for its charge (charge.amount_refunded, which counts
-- refunds made in Stripe's dashboard that Billow may have no row of). That
-- total used to be folded into amount_refunded itself, which therefore
-- could only grow, and a refund Stripe later marked failed (or canceled)
-- stayed counted. Stripe's total is now kept apart, as the most it ever
-- said (a late or replayed report of an older total changes nothing), and
-- amount_refunded is the greater of the refunds that did not fail and that
-- total less the refunds that failed: see payments_sync_refunded() in
-- workers/payments.c.
ALTER TABLE payments
  ADD COLUMN stripe_amount_refunded bigint NOT NULL DEFAULT 0 CHECK (stripe_amount_refunded >= 0);

-- What was counted so far stands for Stripe's total: it was never more
-- than the most Stripe said or the refunds recorded.
UPDATE payments SET stripe_amount_refunded = amount_refunded WHERE amount_refunded > 0;
