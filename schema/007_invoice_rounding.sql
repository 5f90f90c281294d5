-- 007: an invoice in a three-decimal currency (bhd, jod, kwd, omr, tnd)
-- asks only for an amount Stripe can collect there: one whose last digit is
-- 0. Billow computes invoices to the fils, so a proration or a credit can
-- leave, say, 5484 due; the invoice then rounds it down to 5480 and shows
-- the difference as `rounding` (docs/billing.md, "Rounding to what Stripe
-- can collect").
--
-- rounding is 0 or negative, at most 9 minor units: in the customer's
-- favour, never more than the last digit. The totals keep adding up:
-- total = subtotal + rounding, and starting_balance + total = amount_due +
-- ending_balance. Invoices made before are left as they were (0): one
-- still open whose amount due Stripe cannot take fails its charge with
-- amount_unsupported for staff to settle (docs/payments.md).

ALTER TABLE invoices ADD COLUMN rounding bigint NOT NULL DEFAULT 0
  CONSTRAINT invoices_rounding_range CHECK (rounding BETWEEN -9 AND 0);

CREATE OR REPLACE FUNCTION invoice_object(i invoices, with_lines boolean DEFAULT true) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', i.id, 'object', 'invoice', 'customer', i.customer_id, 'subscription', i.subscription_id,
    'number', i.number, 'status', i.status, 'billing_reason', i.billing_reason,
    'description', i.description,
    'currency', i.currency, 'period_start', api_time(i.period_start),
    'period_end', api_time(i.period_end), 'subtotal', i.subtotal, 'rounding', i.rounding,
    'total', i.total,
    'starting_balance', i.starting_balance, 'ending_balance', i.ending_balance,
    'amount_due', i.amount_due, 'amount_paid', i.amount_paid,
    'amount_remaining', i.amount_remaining, 'amount_refunded', i.amount_refunded,
    'attempt_count', i.attempt_count, 'next_payment_attempt', api_time(i.next_payment_attempt),
    'payment_method_required', i.payment_method_required,
    'last_payment_error', i.last_payment_error,
    'lines', CASE WHEN with_lines THEN jsonb_build_object('object', 'list', 'data', coalesce((
      SELECT jsonb_agg(invoice_line_object(l) ORDER BY l.position)
        FROM invoice_lines l WHERE l.tenant_id = i.tenant_id AND l.invoice_id = i.id),
      '[]'::jsonb)) END,
    'created_at', api_time(i.created_at), 'finalized_at', api_time(i.finalized_at),
    'paid_at', api_time(i.paid_at), 'voided_at', api_time(i.voided_at),
    'marked_uncollectible_at', api_time(i.marked_uncollectible_at))
$$;
