-- 008: a new default payment method retries a customer's open invoices at
-- once, but not one whose last attempt failed on its amount: one Stripe
-- cannot take in its currency (amount_unsupported) or one already paid by a
-- PaymentIntent for another amount (amount_mismatch). No card changes
-- either; a retry would only record the same failure again (or confirm the
-- succeeded intent once more), and staff settle such invoices
-- (docs/payments.md).
CREATE OR REPLACE FUNCTION customer_payment_method_changed(p_customer text) RETURNS integer
LANGUAGE sql AS $$
  WITH moved AS (
    UPDATE invoices i SET next_payment_attempt = coalesce(tc.frozen_time, now()),
                          payment_method_required = false, updated_at = now()
      FROM customers c LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id
     WHERE c.tenant_id = i.tenant_id AND c.id = i.customer_id AND i.customer_id = p_customer
       AND i.status = 'open' AND i.attempt_count > 0 AND i.billing_reason <> 'manual'
       AND coalesce(i.last_payment_error ->> 'code', '') NOT IN ('amount_unsupported', 'amount_mismatch')
     RETURNING 1)
  SELECT count(*)::integer FROM moved
$$;
