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

-- Then every payment's amount_refunded is worked out again by that rule, so
-- a refund that failed before this migration (and whose failure will not be
-- reported again) stops counting now, not at the payment's next event. The
-- invoices' refunded amounts follow their payments'. Billow's own
-- correction, not a person's: no audit event (see audit_by_a_person in 003).
SELECT set_config('app.job', '{"actor": "system"}', true);

WITH r AS (
  SELECT r.tenant_id, r.payment_id,
         coalesce(sum(r.amount) FILTER (WHERE r.status IN ('pending', 'succeeded')), 0) AS live,
         coalesce(sum(r.amount) FILTER (WHERE r.status IN ('failed', 'canceled')), 0) AS failed
    FROM refunds r GROUP BY r.tenant_id, r.payment_id
), t AS (
  SELECT p.tenant_id, p.id,
         least(p.amount, greatest(coalesce(r.live, 0), p.stripe_amount_refunded - coalesce(r.failed, 0))) AS total
    FROM payments p LEFT JOIN r ON r.tenant_id = p.tenant_id AND r.payment_id = p.id
   WHERE p.amount_refunded > 0
)
UPDATE payments p SET amount_refunded = t.total,
       status = CASE WHEN t.total >= p.amount THEN 'refunded'
                     WHEN t.total > 0 THEN 'partially_refunded' ELSE 'succeeded' END,
       updated_at = now()
  FROM t WHERE p.tenant_id = t.tenant_id AND p.id = t.id AND p.amount_refunded <> t.total;

UPDATE invoices i SET amount_refunded = s.total, updated_at = now()
  FROM (SELECT tenant_id, invoice_id, sum(amount_refunded) AS total FROM payments
         WHERE invoice_id IS NOT NULL GROUP BY tenant_id, invoice_id) s
 WHERE i.tenant_id = s.tenant_id AND i.id = s.invoice_id AND i.amount_refunded <> s.total;
