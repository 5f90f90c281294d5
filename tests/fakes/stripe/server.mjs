// Billow's Stripe fake: the small part of Stripe's API that Billow calls
// (customers, setup intents, payment intents, refunds, charges), answered
// the way Stripe answers for API version 2024-06-20, plus signed webhook
// deliveries and /_fake/ control endpoints for tests. Tests and local runs
// point Billow at it instead of api.stripe.com.
//
//   node tests/fakes/stripe/server.mjs --port N [--latency-ms N] [--webhook KEY=URL|SECRET]...
//
// README.md next to this file describes the behaviour and the control
// endpoints. Node
// built-ins only, so it runs wherever Billow's tests run.

import crypto from 'node:crypto';
import http from 'node:http';
import { URL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { checkParams, findOperation, loadSpec } from '../../integration/lib/stripe_spec.mjs';

const API_VERSION = '2024-06-20';
const MAX_BODY = 1024 * 1024;
const WEBHOOK_RETRIES = 5; // after the first attempt
const WEBHOOK_FIRST_BACKOFF_MS = 200;
const WEBHOOK_TIMEOUT_MS = 10000;
const KEY_RE = /^sk_test_[A-Za-z0-9_]+$/;

// The parameter schemas of every endpoint served, from Stripe's OpenAPI
// spec; the integration tests' checker reads the same file.
const SPEC = loadSpec();

// ---------------------------------------------------------------------------
// Test payment methods (Stripe's testing docs; see README). A card either
// succeeds, or declines with decline: [code, decline_code]; auth: 'always'
// needs 3-D Secure on every payment, 'setup' until saved by a SetupIntent.
// ---------------------------------------------------------------------------
const CARDS = {
  pm_card_visa: { brand: 'visa', last4: '4242' },
  pm_card_visa_debit: { brand: 'visa', last4: '5556', funding: 'debit' },
  pm_card_mastercard: { brand: 'mastercard', last4: '4444' },
  pm_card_mastercard_debit: { brand: 'mastercard', last4: '8210', funding: 'debit' },
  pm_card_amex: { brand: 'amex', last4: '0005' },
  pm_card_discover: { brand: 'discover', last4: '1117' },
  pm_card_bypassPending: { brand: 'visa', last4: '0077' },
  pm_card_visa_chargeDeclined: { brand: 'visa', last4: '0002', decline: ['card_declined', 'generic_decline'] },
  pm_card_visa_chargeDeclinedInsufficientFunds: { brand: 'visa', last4: '9995', decline: ['card_declined', 'insufficient_funds'] },
  pm_card_visa_chargeDeclinedLostCard: { brand: 'visa', last4: '9987', decline: ['card_declined', 'lost_card'] },
  pm_card_visa_chargeDeclinedStolenCard: { brand: 'visa', last4: '9979', decline: ['card_declined', 'stolen_card'] },
  pm_card_chargeDeclinedExpiredCard: { brand: 'visa', last4: '0069', decline: ['expired_card', null] },
  pm_card_chargeDeclinedIncorrectCvc: { brand: 'visa', last4: '0127', decline: ['incorrect_cvc', null] },
  pm_card_chargeDeclinedProcessingError: { brand: 'visa', last4: '0119', decline: ['processing_error', null] },
  pm_card_visa_chargeDeclinedVelocityLimitExceeded: { brand: 'visa', last4: '6975', decline: ['card_declined', 'card_velocity_exceeded'] },
  // Attaching succeeds (a SetupIntent saves it); every charge declines.
  pm_card_chargeCustomerFail: { brand: 'visa', last4: '0341', decline: ['card_declined', 'generic_decline'], setupOk: true },
  pm_card_radarBlock: { brand: 'visa', last4: '0019', decline: ['card_declined', 'fraudulent'], blocked: true },
  pm_card_authenticationRequiredOnSetup: { brand: 'visa', last4: '3155', auth: 'setup' },
  pm_card_authenticationRequired: { brand: 'visa', last4: '3184', auth: 'always' },
  pm_card_authenticationRequiredChargeDeclinedInsufficientFunds: {
    brand: 'visa', last4: '3178', auth: 'always', declineAfterAuth: ['card_declined', 'insufficient_funds'],
  },
  pm_card_threeDSecure2Required: { brand: 'visa', last4: '3220', auth: 'always' },
  pm_card_createDispute: { brand: 'visa', last4: '0259', dispute: 'fraudulent' },
  pm_card_createDisputeInquiry: { brand: 'visa', last4: '1976', dispute: 'inquiry' },
  // Refund outcomes: refundFail is treated as succeeding (the later flip to
  // failed is not simulated); pendingRefund leaves the refund pending.
  pm_card_refundFail: { brand: 'visa', last4: '5126' },
  pm_card_pendingRefund: { brand: 'visa', last4: '7726', refundPending: true },
};
const ALIASES = {
  pm_card_chargeDeclined: 'pm_card_visa_chargeDeclined',
  pm_card_chargeDeclinedInsufficientFunds: 'pm_card_visa_chargeDeclinedInsufficientFunds',
  pm_card_chargeDeclinedLostCard: 'pm_card_visa_chargeDeclinedLostCard',
  pm_card_chargeDeclinedStolenCard: 'pm_card_visa_chargeDeclinedStolenCard',
  pm_card_chargeDeclinedVelocityLimitExceeded: 'pm_card_visa_chargeDeclinedVelocityLimitExceeded',
};

// Stripe's customer-facing message per decline_code (or code).
const DECLINE_MESSAGES = {
  insufficient_funds: 'Your card has insufficient funds.',
  expired_card: 'Your card has expired.',
  incorrect_cvc: "Your card's security code is incorrect.",
  processing_error: 'An error occurred while processing your card. Try again in a little bit.',
  authentication_required: 'Your card was declined. This transaction requires authentication.',
};
const declineMessage = (code, declineCode) => DECLINE_MESSAGES[declineCode] || DECLINE_MESSAGES[code] || 'Your card was declined.';

const CURRENCIES = new Set(('usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn bzd cad cdf chf '
  + 'clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy '
  + 'kes kgs khr kmf krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr '
  + 'pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx '
  + 'uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw').split(' '));
const ZERO_DECIMAL = new Set('bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf'.split(' '));
// Stripe's minimum charge per currency (smallest unit), where it is fixed.
const MIN_AMOUNT = {
  usd: 50, eur: 50, gbp: 30, aud: 50, cad: 50, chf: 50, nzd: 50, sgd: 50, jpy: 50, hkd: 400, dkk: 250, nok: 300,
  sek: 300, pln: 200, czk: 1500, huf: 17500, mxn: 1000, brl: 50, inr: 50, myr: 200, thb: 1000, aed: 200, ron: 200, bgn: 100,
};
const MAX_AMOUNT = 99999999;
const SYMBOLS = { usd: '$', eur: '€', gbp: '£', jpy: '¥' };
const money = (amount, cur) => `${SYMBOLS[cur] || ''}${ZERO_DECIMAL.has(cur) ? amount : (amount / 100).toFixed(2)}`;

const DISPUTE_REASONS = new Set(['bank_cannot_process', 'check_returned', 'credit_not_processed', 'customer_initiated', 'debit_not_authorized',
  'duplicate', 'fraudulent', 'general', 'incorrect_account_details', 'insufficient_funds', 'product_not_received',
  'product_unacceptable', 'subscription_canceled', 'unrecognized']);

// Fields each object type lets `expand[]` replace by the object (Stripe's
// expandable fields the fake can resolve, or leaves as ids).
const EXPANDABLE = {
  customer: ['default_source', 'invoice_settings.default_payment_method', 'test_clock'],
  payment_intent: ['customer', 'latest_charge', 'payment_method', 'invoice', 'application', 'on_behalf_of', 'review'],
  setup_intent: ['customer', 'payment_method', 'latest_attempt', 'mandate', 'single_use_mandate', 'application', 'on_behalf_of'],
  refund: ['charge', 'payment_intent', 'balance_transaction', 'failure_balance_transaction', 'source_transfer_reversal', 'transfer_reversal'],
  refund_list: ['data.charge', 'data.payment_intent', 'data.balance_transaction', 'data.failure_balance_transaction'],
  charge: ['customer', 'payment_intent', 'balance_transaction', 'invoice', 'application', 'application_fee', 'on_behalf_of', 'review',
    'source_transfer', 'transfer', 'failure_balance_transaction'],
};

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function randomChars(n) {
  const bytes = crypto.randomBytes(n);
  let s = '';
  for (const b of bytes) s += ALNUM[b % ALNUM.length];
  return s;
}
const newId = (prefix, n = 24) => `${prefix}_${randomChars(n)}`;
const now = () => Math.floor(Date.now() / 1000);
const clone = (v) => (v === undefined ? v : JSON.parse(JSON.stringify(v)));
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const nulls = (...keys) => Object.fromEntries(keys.map((k) => [k, null]));

// Stripe's key order: id and object first, then the fields alphabetically.
function shaped({ id, object, ...fields }) {
  return { id, object, ...Object.fromEntries(Object.keys(fields).sort().map((k) => [k, fields[k]])) };
}

// An error answered in Stripe's shape {"error": {...}}.
class ApiError extends Error {
  constructor(status, fields) {
    super(fields.message);
    this.status = status;
    this.fields = fields;
  }
}
const docUrl = (code) => `https://stripe.com/docs/error-codes/${code.replace(/_/g, '-')}`;
function invalid(message, param, code, status = 400) {
  const f = { type: 'invalid_request_error', message };
  if (code) Object.assign(f, { code, doc_url: docUrl(code) });
  if (param) f.param = param;
  return new ApiError(status, f);
}
const noSuch = (what, id, param, status = 400) => invalid(`No such ${what}: '${id}'`, param, 'resource_missing', status);

// ---------------------------------------------------------------------------
// Form decoding: a=1&metadata[k]=v&expand[]=x → {a, metadata: {k}, expand: [x]}
// ---------------------------------------------------------------------------
class FormError extends Error {
  constructor(message, param) {
    super(message);
    this.param = param;
  }
}

// Nesting deeper than any Stripe parameter is refused, so a hostile body
// cannot make the recursive walks over parameters overflow the stack.
const MAX_DEPTH = 16;

function splitKey(key) {
  const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
  if (!m) throw new FormError(`Invalid parameter name: ${key.slice(0, 100)}`, key.slice(0, 100));
  const parts = [m[1], ...[...m[2].matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1])];
  if (parts.length > MAX_DEPTH) throw new FormError(`Parameter nested too deeply: ${key.slice(0, 100)}`, m[1]);
  return parts;
}

// Null-prototype objects, so a parameter called __proto__ is only an
// unknown parameter, never a change to Object.prototype.
const dict = () => Object.create(null);

function assign(root, parts, value, key) {
  let node = root;
  for (let i = 0; i < parts.length; i++) {
    const last = i === parts.length - 1;
    const appendNext = parts[i + 1] === '';
    let name = parts[i];
    if (name === '') {
      // x[]=1 appends; x[][a]=1&x[][b]=2 fills one element until a key repeats.
      if (last) {
        node.push(value);
        return;
      }
      const tail = node[node.length - 1];
      if (!isObject(tail) || Object.hasOwn(tail, parts[i + 1]) || appendNext) node.push(appendNext ? [] : dict());
      name = node.length - 1;
    } else if (Array.isArray(node)) {
      throw new FormError(`Invalid array: ${key}`, key);
    }
    if (last) {
      if (typeof node[name] === 'object' && node[name] !== null) throw new FormError(`Invalid hash: ${key}`, key);
      node[name] = value;
      return;
    }
    if (node[name] === undefined) node[name] = appendNext ? [] : dict();
    else if (typeof node[name] !== 'object' || Array.isArray(node[name]) !== appendNext) {
      throw new FormError(`Invalid ${appendNext ? 'array' : 'hash'}: ${key}`, parts[0]);
    }
    node = node[name];
  }
}

function unescapeForm(s) {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    throw new FormError(`Invalid URL encoding: ${s.slice(0, 40)}`);
  }
}

function decodeForm(text) {
  const out = dict();
  if (!text) return out;
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = unescapeForm(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : unescapeForm(pair.slice(eq + 1));
    assign(out, splitKey(key), value, key);
  }
  return out;
}

// Parameters compared for idempotency: key order does not matter.
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

// ---------------------------------------------------------------------------
// State. One account per secret key: its objects, events, request log,
// idempotency records and charge counts. Webhook endpoints and faults are
// global lists tagged with the key they belong to.
// ---------------------------------------------------------------------------
const accounts = new Map();
const anonymousRequests = []; // requests without a usable key
let endpoints = [];
let faults = [];

function emptyStats() {
  return { charges: {}, charges_total: 0, succeeded_total: 0, failed_total: 0, amount_succeeded: 0, refunds_total: 0, amount_refunded: 0 };
}

function account(apiKey) {
  let a = accounts.get(apiKey);
  if (!a) {
    a = { apiKey, objects: new Map(), meta: new Map(), events: [], requests: [], idempotency: new Map(), stats: emptyStats(), scripts: new Map() };
    accounts.set(apiKey, a);
  }
  return a;
}

function put(acct, obj, meta = {}) {
  acct.objects.set(obj.id, obj);
  acct.meta.set(obj.id, meta);
  return obj;
}
const get = (acct, id, type) => {
  const o = typeof id === 'string' ? acct.objects.get(id) : undefined;
  return o && (!type || o.object === type) ? o : undefined;
};

// Which account holds an object id (control endpoints take ids only).
function accountOf(id, apiKey) {
  if (apiKey) return accounts.get(apiKey)?.objects.has(id) ? accounts.get(apiKey) : undefined;
  for (const a of accounts.values()) if (a.objects.has(id)) return a;
  return undefined;
}

// ---------------------------------------------------------------------------
// Objects, shaped like Stripe's for API 2024-06-20.
// ---------------------------------------------------------------------------
const ADDRESS_KEYS = ['city', 'country', 'line1', 'line2', 'postal_code', 'state'];
function address(given, base = null) {
  if (given === undefined) return base;
  if (given === '') return null;
  const out = {};
  for (const k of ADDRESS_KEYS) out[k] = given[k] ?? base?.[k] ?? null;
  return out;
}

// metadata[k]=v merges, metadata[k]= removes k, metadata= clears; Stripe's
// limits: 50 keys, keys up to 40 characters, values up to 500.
function mergeMetadata(base, given) {
  if (given === undefined) return base;
  if (given === '') return {};
  const out = { ...base };
  for (const [k, v] of Object.entries(given)) {
    if (k.length > 40) throw invalid(`Invalid metadata: keys can be at most 40 characters long (${k})`, `metadata[${k}]`);
    if (v.length > 500) throw invalid('Invalid metadata: values can be at most 500 characters long', `metadata[${k}]`);
    if (v === '') delete out[k];
    else out[k] = v;
  }
  if (Object.keys(out).length > 50) throw invalid('Invalid metadata: metadata can have at most 50 keys', 'metadata');
  return out;
}

function fingerprint(last4) {
  return crypto.createHash('sha256').update(`billow-fake-card-${last4}`).digest('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, 16);
}

function cardDetails(card) {
  return {
    brand: card.brand,
    checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: 'pass' },
    country: 'US',
    exp_month: 12,
    exp_year: new Date().getUTCFullYear() + 3,
    fingerprint: fingerprint(card.last4),
    funding: card.funding || 'credit',
    last4: card.last4,
  };
}

// A PaymentMethod minted from a test alias, as Stripe mints a new pm_ each
// time a pm_card_* shortcut is used.
function mintPaymentMethod(acct, alias, customer = null) {
  const card = CARDS[alias];
  return put(acct, shaped({
    id: newId('pm'), object: 'payment_method', allow_redisplay: 'unspecified', created: now(), customer, livemode: false, metadata: {}, type: 'card',
    billing_details: { address: address({}), email: null, name: null, phone: null },
    card: {
      ...cardDetails(card), display_brand: card.brand, generated_from: null, networks: { available: [card.brand], preferred: null },
      three_d_secure_usage: { supported: true }, wallet: null,
    },
  }), { card, alias });
}

// A payment_method parameter: a test alias (minted anew) or a pm_ minted
// before; anything else is Stripe's 400 resource_missing.
function resolvePaymentMethod(acct, id, param = 'payment_method') {
  const alias = ALIASES[id] || id;
  if (CARDS[alias]) return mintPaymentMethod(acct, alias);
  const pm = get(acct, id, 'payment_method');
  if (!pm) throw noSuch('PaymentMethod', id, param);
  return pm;
}

function lookupCustomer(acct, id) {
  if (id === undefined || id === '') return null;
  const c = get(acct, id, 'customer');
  if (!c) throw noSuch('customer', id, 'customer');
  return c;
}

function newCustomer(acct, p) {
  const c = shaped({
    id: newId('cus', 14), object: 'customer', created: now(), livemode: false,
    ...nulls('currency', 'default_source', 'discount', 'test_clock'),
    address: address(p.address), balance: p.balance ?? 0, delinquent: false, description: p.description || null,
    email: p.email || null, name: p.name || null, phone: p.phone || null, metadata: mergeMetadata({}, p.metadata),
    invoice_prefix: p.invoice_prefix || crypto.randomBytes(4).toString('hex').toUpperCase(),
    invoice_settings: nulls('custom_fields', 'default_payment_method', 'footer', 'rendering_options'),
    next_invoice_sequence: p.next_invoice_sequence ?? 1, preferred_locales: p.preferred_locales || [],
    shipping: p.shipping || null, tax_exempt: p.tax_exempt || 'none',
  });
  if (p.payment_method) resolvePaymentMethod(acct, p.payment_method).customer = c.id;
  applyInvoiceSettings(acct, c, p.invoice_settings);
  return put(acct, c);
}

function applyInvoiceSettings(acct, c, s) {
  if (!s) return;
  const dpm = s.default_payment_method;
  if (dpm !== undefined && dpm !== '') {
    const pm = get(acct, dpm, 'payment_method');
    if (!pm) throw noSuch('PaymentMethod', dpm, 'invoice_settings[default_payment_method]');
    if (pm.customer !== c.id) {
      throw invalid(`The customer does not have a payment method with the ID ${dpm}. The payment method must be attached to the customer.`,
        'invoice_settings[default_payment_method]', 'resource_missing');
    }
  }
  if (dpm !== undefined) c.invoice_settings.default_payment_method = dpm || null;
  if (s.footer !== undefined) c.invoice_settings.footer = s.footer || null;
}

function updateCustomer(acct, c, p) {
  for (const k of ['email', 'name', 'phone', 'description', 'invoice_prefix']) if (p[k] !== undefined) c[k] = p[k] || null;
  for (const k of ['balance', 'next_invoice_sequence']) if (p[k] !== undefined) c[k] = p[k];
  if (p.tax_exempt !== undefined) c.tax_exempt = p.tax_exempt || 'none';
  if (p.preferred_locales !== undefined) c.preferred_locales = p.preferred_locales;
  if (p.shipping !== undefined) c.shipping = p.shipping || null;
  c.address = address(p.address, c.address);
  c.metadata = mergeMetadata(c.metadata, p.metadata);
  if (p.payment_method) resolvePaymentMethod(acct, p.payment_method).customer = c.id;
  applyInvoiceSettings(acct, c, p.invoice_settings);
  return c;
}

// Stripe writes ISK as a two-decimal currency (100 = 1 króna) but, since
// April 2023, takes only whole krónur in charges and refunds alike
// (support.stripe.com, "Deprecation of fractional ISK charges and refunds").
function validateWholeKronur(amount, currency, param = 'amount') {
  if (currency === 'isk' && amount % 100 !== 0) {
    throw invalid('Invalid amount. Currency ISK has become effectively zero-decimal and charged amounts must be evenly divisible by 100. See https://stripe.com/docs/currencies#special-cases for more information.', param, 'invalid_charge_amount_no_decimal_compatible');
  }
}

function validateAmount(amount, currency, param = 'amount') {
  if (amount < 1) throw invalid('This value must be greater than or equal to 1.', param, 'parameter_invalid_integer');
  if (currency === undefined) return;
  validateWholeKronur(amount, currency, param);
  if (amount < (MIN_AMOUNT[currency] || 0)) {
    throw invalid(`Amount must be at least ${money(MIN_AMOUNT[currency], currency)} ${currency}`, param, 'amount_too_small');
  }
  if (amount > MAX_AMOUNT) throw invalid(`Amount must be no more than ${money(MAX_AMOUNT, currency)} ${currency}`, param, 'amount_too_large');
}

function validateCurrency(cur) {
  if (!CURRENCIES.has(cur)) {
    // 'USD' is refused too: Stripe documents currencies in lower case.
    throw invalid(`Invalid currency: ${cur}. Stripe currently supports these currencies: ${[...CURRENCIES].join(', ')}`, 'currency');
  }
}

// payment_method_types given: exactly those; otherwise API versions since
// 2023-08-16 turn automatic payment methods on.
function methodTypes(p) {
  if (p.payment_method_types) return { payment_method_types: p.payment_method_types, automatic_payment_methods: null };
  const apm = p.automatic_payment_methods || { enabled: true };
  return { payment_method_types: ['card'], automatic_payment_methods: { allow_redirects: apm.allow_redirects || 'always', enabled: apm.enabled } };
}

function newPaymentIntent(acct, p, customer, pm) {
  const id = newId('pi');
  return put(acct, shaped({
    id, object: 'payment_intent', created: now(), livemode: false,
    ...nulls('application', 'canceled_at', 'cancellation_reason', 'invoice', 'last_payment_error', 'latest_charge', 'next_action',
      'on_behalf_of', 'payment_method_configuration_details', 'processing', 'review', 'source', 'transfer_data'),
    ...methodTypes(p),
    amount: p.amount, amount_capturable: 0, amount_details: { tip: {} }, amount_received: 0, currency: p.currency,
    application_fee_amount: p.application_fee_amount ?? null,
    capture_method: p.capture_method || 'automatic', confirmation_method: p.confirmation_method || 'automatic',
    client_secret: `${id}_secret_${randomChars(25)}`,
    customer: customer?.id ?? null, description: p.description || null, metadata: mergeMetadata({}, p.metadata),
    payment_method: pm?.id ?? null, status: pm ? 'requires_confirmation' : 'requires_payment_method',
    payment_method_options: { card: { installments: null, mandate_options: null, network: null, request_three_d_secure: 'automatic' } },
    receipt_email: p.receipt_email || null, setup_future_usage: p.setup_future_usage || null, shipping: p.shipping || null,
    statement_descriptor: p.statement_descriptor || null, statement_descriptor_suffix: p.statement_descriptor_suffix || null,
    transfer_group: p.transfer_group || null,
  }));
}

// A Charge for one payment attempt: succeeded, or failed with `failure`.
function newCharge(acct, pi, pm, failure) {
  const card = acct.meta.get(pm.id).card;
  const captured = !failure && pi.capture_method !== 'manual';
  const reason = failure && (failure.decline_code || failure.code);
  let outcome = { network_status: 'approved_by_network', reason: null, risk_level: 'normal', risk_score: 32, seller_message: 'Payment complete.', type: 'authorized' };
  if (failure && card.blocked) {
    outcome = {
      network_status: 'not_sent_to_network', reason: 'highest_risk_level', risk_level: 'highest', risk_score: 95,
      seller_message: 'Stripe blocked this payment as too risky.', type: 'blocked',
    };
  } else if (failure) {
    outcome = {
      network_status: 'declined_by_network', reason, risk_level: 'normal', risk_score: 32,
      seller_message: `The bank returned the decline code \`${reason}\`.`, type: 'issuer_declined',
    };
  }
  const id = newId('ch');
  return put(acct, shaped({
    id, object: 'charge', created: now(), livemode: false,
    ...nulls('application', 'application_fee', 'application_fee_amount', 'failure_balance_transaction', 'invoice', 'on_behalf_of',
      'receipt_number', 'review', 'source', 'source_transfer', 'transfer_data'),
    amount: pi.amount, amount_captured: captured ? pi.amount : 0, amount_refunded: 0, currency: pi.currency, captured,
    balance_transaction: captured ? newId('txn') : null, billing_details: clone(pm.billing_details),
    calculated_statement_descriptor: 'BILLOW FAKE', customer: pi.customer, description: pi.description, disputed: false,
    failure_code: failure ? failure.code : null, failure_message: failure ? failure.message : null, fraud_details: {},
    metadata: { ...pi.metadata }, outcome, paid: !failure, payment_intent: pi.id, payment_method: pm.id,
    payment_method_details: {
      card: {
        ...cardDetails(card), amount_authorized: failure ? null : pi.amount, authorization_code: null,
        extended_authorization: { status: 'disabled' }, incremental_authorization: { status: 'unavailable' }, installments: null,
        mandate: null, multicapture: { status: 'unavailable' }, network: card.brand, network_token: { used: false },
        overcapture: { maximum_amount_capturable: pi.amount, status: 'unavailable' }, three_d_secure: null, wallet: null,
      },
      type: 'card',
    },
    receipt_email: pi.receipt_email, receipt_url: `https://pay.stripe.com/receipts/payment/${id}`, refunded: false,
    shipping: pi.shipping, statement_descriptor: pi.statement_descriptor, statement_descriptor_suffix: pi.statement_descriptor_suffix,
    status: failure ? 'failed' : 'succeeded', transfer_group: pi.transfer_group,
  }));
}

function newSetupIntent(acct, p, customer) {
  const id = newId('seti');
  return put(acct, shaped({
    id, object: 'setup_intent', created: now(), livemode: false,
    ...nulls('application', 'cancellation_reason', 'last_setup_error', 'latest_attempt', 'mandate', 'next_action', 'on_behalf_of',
      'payment_method', 'payment_method_configuration_details', 'single_use_mandate'),
    ...methodTypes(p),
    client_secret: `${id}_secret_${randomChars(31)}`, customer: customer?.id ?? null, description: p.description || null,
    flow_directions: p.flow_directions || null, metadata: mergeMetadata({}, p.metadata),
    payment_method_options: { card: { mandate_options: null, network: null, request_three_d_secure: 'automatic' } },
    status: 'requires_payment_method', usage: p.usage || 'off_session',
  }));
}

const EVIDENCE_FIELDS = ['access_activity_log', 'billing_address', 'cancellation_policy', 'cancellation_policy_disclosure',
  'cancellation_rebuttal', 'customer_communication', 'customer_email_address', 'customer_name', 'customer_purchase_ip',
  'customer_signature', 'duplicate_charge_documentation', 'duplicate_charge_explanation', 'duplicate_charge_id',
  'product_description', 'receipt', 'refund_policy', 'refund_policy_disclosure', 'refund_refusal_explanation', 'service_date',
  'service_documentation', 'shipping_address', 'shipping_carrier', 'shipping_date', 'shipping_documentation',
  'shipping_tracking_number', 'uncategorized_file', 'uncategorized_text'];

function newDispute(acct, ch, reason, inquiry = false) {
  const created = now();
  const card = acct.meta.get(ch.payment_method).card;
  const id = newId('dp');
  // A chargeback withdraws the amount plus Stripe's dispute fee; an inquiry
  // moves no money yet.
  const withdrawal = inquiry ? [] : [{
    id: newId('txn'), object: 'balance_transaction', amount: -ch.amount, available_on: created, created, currency: ch.currency,
    description: `Chargeback withdrawal for ${ch.id}`, exchange_rate: null, fee: 1500,
    fee_details: [{ amount: 1500, application: null, currency: ch.currency, description: 'Dispute fee', type: 'stripe_fee' }],
    net: -ch.amount - 1500, reporting_category: 'dispute', source: id, status: 'available', type: 'adjustment',
  }];
  ch.disputed = true;
  return put(acct, shaped({
    id, object: 'dispute', created, livemode: false, metadata: {},
    amount: ch.amount - ch.amount_refunded, balance_transactions: withdrawal, charge: ch.id, currency: ch.currency,
    evidence: nulls(...EVIDENCE_FIELDS),
    evidence_details: { due_by: created + 7 * 86400, has_evidence: false, past_due: false, submission_count: 0 },
    is_charge_refundable: inquiry, payment_intent: ch.payment_intent, reason,
    payment_method_details: { card: { brand: card.brand, case_type: inquiry ? 'inquiry' : 'chargeback', network_reason_code: '10.4' }, type: 'card' },
    status: inquiry ? 'warning_needs_response' : 'needs_response',
  }));
}

// ---------------------------------------------------------------------------
// Events and webhook deliveries
// ---------------------------------------------------------------------------

// Records an event now; its deliveries start once the request that caused
// it has been answered (ctx.outbox is flushed after the response).
function emit(ctx, type, obj) {
  const acct = ctx.acct;
  const targets = endpoints.filter((e) => e.apiKey === acct.apiKey);
  const event = {
    id: newId('evt'), object: 'event', api_version: API_VERSION, created: now(), data: { object: clone(obj) }, livemode: false,
    pending_webhooks: targets.length, request: { id: ctx.api ? ctx.reqId : null, idempotency_key: ctx.api ? ctx.idemKey : null }, type,
  };
  const deliveries = targets.map((e) => ({
    endpoint: e.id, url: e.url, state: 'pending', attempts: 0, last_status: null, last_error: null, delivered_at: null,
  }));
  const record = { event, deliveries };
  acct.events.push(record);
  targets.forEach((e, i) => ctx.outbox.push({ endpoint: e, record, delivery: record.deliveries[i] }));
}

function flushOutbox(ctx) {
  for (const item of ctx.outbox) {
    item.endpoint.queue.push(item);
    pump(item.endpoint);
  }
  ctx.outbox = [];
}

// Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>.
function signature(secret, body, t = now()) {
  const v1 = crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${v1}`;
}

function postOnce(url, body, secret) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      timeout: WEBHOOK_TIMEOUT_MS,
      headers: {
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(body),
        'User-Agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
        'Stripe-Signature': signature(secret, body),
      },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${WEBHOOK_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

// Delivers one endpoint's events one after another, in the order they were
// made, each retried with doubling backoff before the next is tried.
async function pump(ep) {
  if (ep.busy) return;
  ep.busy = true;
  const gen = ep.gen;
  try {
    while (ep.queue.length && gen === ep.gen) {
      const { record, delivery } = ep.queue.shift();
      const body = JSON.stringify(record.event, null, 2);
      for (let attempt = 0; attempt <= WEBHOOK_RETRIES && gen === ep.gen; attempt++) {
        if (attempt > 0) await sleep(WEBHOOK_FIRST_BACKOFF_MS * 2 ** (attempt - 1));
        delivery.attempts++;
        try {
          delivery.last_status = await postOnce(ep.url, body, ep.secret);
          delivery.last_error = null;
        } catch (e) {
          delivery.last_status = null;
          delivery.last_error = e.message;
        }
        if (delivery.last_status >= 200 && delivery.last_status < 300) {
          delivery.state = 'delivered';
          delivery.delivered_at = new Date().toISOString();
          record.event.pending_webhooks = Math.max(0, record.event.pending_webhooks - 1);
          break;
        }
        if (attempt === WEBHOOK_RETRIES) delivery.state = 'failed';
      }
    }
  } finally {
    ep.busy = false;
  }
  // A reset stopped this run; events queued since then still go out.
  if (ep.queue.length) pump(ep);
}

function addEndpoint(apiKey, url, secret, source) {
  let u;
  try {
    u = new URL(url);
  } catch {
    throw invalid(`Invalid URL: ${url}`, 'url');
  }
  if (u.protocol !== 'http:') throw invalid('Only http:// webhook URLs are supported by the fake', 'url');
  if (!KEY_RE.test(apiKey || '')) throw invalid('api_key must be a test secret key (sk_test_…)', 'api_key');
  // gen: bumped by a reset, which stops the deliveries in flight.
  const ep = { id: newId('we'), apiKey, url, secret: secret || `whsec_${randomChars(32)}`, source, queue: [], busy: false, gen: 0 };
  endpoints.push(ep);
  return ep;
}
const endpointJson = (e) => ({ id: e.id, api_key: e.apiKey, url: e.url, secret: e.secret, source: e.source });

// ---------------------------------------------------------------------------
// Payments
// ---------------------------------------------------------------------------
function countCharge(ctx, pi, succeeded) {
  const s = ctx.acct.stats;
  const key = ctx.acct.meta.get(pi.id).confirmKey || '(none)';
  s.charges[key] = (s.charges[key] || 0) + 1;
  s.charges_total++;
  if (succeeded) {
    s.succeeded_total++;
    s.amount_succeeded += pi.amount;
  } else {
    s.failed_total++;
  }
}

// A payment attempt that reached the card network and failed: a failed
// charge, the PaymentIntent back to requires_payment_method, the events.
// Returns the card_error fields Stripe answers with (HTTP 402).
function failPayment(ctx, pi, pm, code, declineCode) {
  const message = declineMessage(code, declineCode);
  const failure = { code, decline_code: declineCode, message };
  const ch = newCharge(ctx.acct, pi, pm, failure);
  const err = { type: 'card_error', charge: ch.id, code, doc_url: docUrl(code), message, payment_method: clone(pm) };
  if (declineCode) err.decline_code = declineCode;
  Object.assign(pi, { status: 'requires_payment_method', payment_method: null, latest_charge: ch.id, next_action: null, last_payment_error: err });
  countCharge(ctx, pi, false);
  emit(ctx, 'charge.failed', ch);
  emit(ctx, 'payment_intent.payment_failed', pi);
  return { ...err, payment_intent: clone(pi) };
}

function succeedPayment(ctx, pi, pm) {
  const acct = ctx.acct;
  const ch = newCharge(acct, pi, pm, null);
  const manual = pi.capture_method === 'manual';
  Object.assign(pi, {
    status: manual ? 'requires_capture' : 'succeeded', amount_received: manual ? 0 : pi.amount, amount_capturable: manual ? pi.amount : 0,
    latest_charge: ch.id, next_action: null, last_payment_error: null,
  });
  if (pi.setup_future_usage && pi.customer) pm.customer = pi.customer;
  countCharge(ctx, pi, true);
  emit(ctx, 'charge.succeeded', ch);
  emit(ctx, manual ? 'payment_intent.amount_capturable_updated' : 'payment_intent.succeeded', pi);
  const dispute = acct.meta.get(pm.id).card.dispute;
  if (dispute) emit(ctx, 'charge.dispute.created', newDispute(acct, ch, dispute === 'inquiry' ? 'general' : dispute, dispute === 'inquiry'));
}

const CONFIRMABLE = ['requires_payment_method', 'requires_confirmation', 'requires_action'];
const NO_PAYMENT_METHOD = "You cannot confirm this PaymentIntent because it's missing a payment method. "
  + 'To confirm the PaymentIntent, specify a payment method with the `payment_method` parameter.';

// The next_action of an intent waiting for 3-D Secure.
function threeDSecureAction(returnUrl) {
  const src = newId('src');
  if (returnUrl) return { type: 'redirect_to_url', redirect_to_url: { return_url: returnUrl, url: `https://hooks.stripe.com/3d_secure_2/hosted/${src}` } };
  return { type: 'use_stripe_sdk', use_stripe_sdk: { type: 'three_d_secure_redirect', stripe_js: `https://hooks.stripe.com/redirect/authenticate/${src}`, source: src } };
}

// Confirms pi with the confirm parameters p (from create or /confirm); the
// card's behaviour decides the outcome. Throws 402 on a decline.
function confirmIntent(ctx, pi, p) {
  const acct = ctx.acct;
  if (!CONFIRMABLE.includes(pi.status)) {
    const err = invalid(`You cannot confirm this PaymentIntent because it has a status of ${pi.status}. Only a PaymentIntent `
      + `with one of the following statuses may be confirmed: ${CONFIRMABLE.join(', ')}.`, null, 'payment_intent_unexpected_state');
    err.fields.payment_intent = clone(pi);
    throw err;
  }
  const pm = p.payment_method ? resolvePaymentMethod(acct, p.payment_method) : get(acct, pi.payment_method, 'payment_method');
  if (!pm) {
    throw invalid(NO_PAYMENT_METHOD, null, 'payment_intent_unexpected_state');
  }
  for (const k of ['receipt_email', 'setup_future_usage', 'capture_method']) if (p[k] !== undefined) pi[k] = p[k] || null;
  if (p.payment_method_types) Object.assign(pi, methodTypes(p));
  pi.payment_method = pm.id;
  acct.meta.get(pi.id).confirmKey = ctx.idemKey;
  const card = acct.meta.get(pm.id).card;
  const offSession = p.off_session !== undefined && p.off_session !== false;
  const needsAuth = card.auth === 'always' || (card.auth === 'setup' && !(offSession && acct.meta.get(pm.id).setUp));
  if (needsAuth && (offSession || p.error_on_requires_action)) {
    // Off-session the customer cannot authenticate: Stripe declines with
    // authentication_required and the intent goes back to
    // requires_payment_method (not requires_action).
    throw new ApiError(402, failPayment(ctx, pi, pm, 'authentication_required', 'authentication_required'));
  }
  if (needsAuth) {
    pi.status = 'requires_action';
    pi.next_action = threeDSecureAction(p.return_url);
    emit(ctx, 'payment_intent.requires_action', pi);
    return pi;
  }
  // A scripted outcome (POST /_fake/payment_methods/{alias}/script) comes
  // before the card's own: a card whose funds arrive by the third retry.
  const script = acct.scripts.get(acct.meta.get(pm.id).alias);
  const scripted = script && script.length ? script.shift() : undefined;
  if (scripted === 'succeed') {
    succeedPayment(ctx, pi, pm);
    return pi;
  }
  if (scripted) throw new ApiError(402, failPayment(ctx, pi, pm, 'card_declined', scripted));
  if (card.decline) throw new ApiError(402, failPayment(ctx, pi, pm, ...card.decline));
  succeedPayment(ctx, pi, pm);
  return pi;
}

// Statuses a PaymentIntent may be canceled in (Stripe's list).
const CANCELABLE = ['requires_payment_method', 'requires_capture', 'requires_confirmation', 'requires_action', 'processing'];
const CANCELLATION_REASONS = new Set(['duplicate', 'fraudulent', 'requested_by_customer', 'abandoned']);

// Cancels an intent that has not succeeded: it can no longer be confirmed.
function cancelIntent(ctx, pi, p) {
  if (!CANCELABLE.includes(pi.status)) {
    const err = invalid(`You cannot cancel this PaymentIntent because it has a status of ${pi.status}. Only a PaymentIntent `
      + `with one of the following statuses may be canceled: ${CANCELABLE.join(', ')}.`, null, 'payment_intent_unexpected_state');
    err.fields.payment_intent = clone(pi);
    throw err;
  }
  if (p.cancellation_reason !== undefined && !CANCELLATION_REASONS.has(p.cancellation_reason)) {
    throw invalid(`Invalid cancellation_reason: must be one of ${[...CANCELLATION_REASONS].join(', ')}`, 'cancellation_reason');
  }
  Object.assign(pi, { status: 'canceled', canceled_at: now(), cancellation_reason: p.cancellation_reason || null, next_action: null });
  emit(ctx, 'payment_intent.canceled', pi);
  return pi;
}

// The customer finished (outcome "succeed") or failed ("fail") 3-D Secure
// on a requires_action intent.
function authenticate(ctx, pi, outcome) {
  if (pi.status !== 'requires_action') {
    throw invalid(`This PaymentIntent has a status of ${pi.status}, not requires_action.`, null, 'payment_intent_unexpected_state');
  }
  const pm = get(ctx.acct, pi.payment_method, 'payment_method');
  const card = ctx.acct.meta.get(pm.id).card;
  if (outcome === 'succeed') {
    const decline = card.declineAfterAuth || card.decline;
    if (decline) failPayment(ctx, pi, pm, ...decline);
    else succeedPayment(ctx, pi, pm);
  } else if (outcome === 'fail') {
    // No charge is made when authentication fails.
    Object.assign(pi, {
      status: 'requires_payment_method', payment_method: null, next_action: null,
      last_payment_error: {
        type: 'invalid_request_error', code: 'payment_intent_authentication_failure', doc_url: docUrl('payment_intent_authentication_failure'),
        message: 'The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod '
          + 'to attempt to fulfill this PaymentIntent again.',
        payment_method: clone(pm),
      },
    });
    emit(ctx, 'payment_intent.payment_failed', pi);
  } else {
    throw invalid('outcome must be "succeed" or "fail"', 'outcome');
  }
  return pi;
}

// ---------------------------------------------------------------------------
// API handlers: (ctx) → the object to answer with; errors are thrown.
// ---------------------------------------------------------------------------
function must(acct, id, type, param) {
  const o = get(acct, id, type);
  if (!o) throw noSuch(type, id, param, 404);
  return o;
}

function createPaymentIntent(ctx) {
  const { acct, params: p } = ctx;
  validateCurrency(p.currency);
  validateAmount(p.amount, p.currency);
  const customer = lookupCustomer(acct, p.customer);
  if (p.off_session !== undefined && p.off_session !== false && !p.confirm) throw invalid('off_session can only be used when confirm is true.', 'off_session');
  const pm = p.payment_method ? resolvePaymentMethod(acct, p.payment_method) : null;
  if (p.confirm && !pm) {
    throw invalid(NO_PAYMENT_METHOD, null, 'payment_intent_unexpected_state');
  }
  const pi = newPaymentIntent(acct, p, customer, pm);
  return p.confirm ? confirmIntent(ctx, pi, { ...p, payment_method: undefined }) : pi;
}

function createRefund(ctx) {
  const { acct, params: p } = ctx;
  if (!p.payment_intent && !p.charge) throw invalid('One of the following params should be provided for this request: payment_intent or charge.', null, 'parameter_missing');
  let ch;
  if (p.charge) {
    ch = get(acct, p.charge, 'charge');
    if (!ch) throw noSuch('charge', p.charge, 'charge');
    if (p.payment_intent && ch.payment_intent !== p.payment_intent) throw invalid(`The charge ${ch.id} does not belong to the PaymentIntent ${p.payment_intent}.`, 'charge');
  } else {
    const pi = get(acct, p.payment_intent, 'payment_intent');
    if (!pi) throw noSuch('payment_intent', p.payment_intent, 'payment_intent');
    ch = get(acct, pi.latest_charge, 'charge');
    if (!ch || ch.status !== 'succeeded') throw invalid(`This PaymentIntent (${pi.id}) does not have a successful charge to refund.`, 'payment_intent');
  }
  if (ch.status !== 'succeeded' || !ch.captured) throw invalid(`Charge ${ch.id} has not been captured or did not succeed; it cannot be refunded.`, 'charge');
  if (ch.disputed) throw invalid(`Charge ${ch.id} has been charged back; cannot issue a refund.`, null, 'charge_disputed');
  const remaining = ch.amount_captured - ch.amount_refunded;
  if (remaining <= 0) throw invalid(`Charge ${ch.id} has already been refunded.`, null, 'charge_already_refunded');
  const amount = p.amount ?? remaining;
  validateAmount(amount);
  validateWholeKronur(amount, ch.currency);
  if (amount > remaining) {
    const msg = `Refund amount (${money(amount, ch.currency)}) is greater than unrefunded amount on charge (${money(remaining, ch.currency)})`;
    throw invalid(msg, 'amount', 'amount_too_large');
  }
  const pending = acct.meta.get(ch.payment_method).card.refundPending;
  const re = put(acct, shaped({
    id: newId('re'), object: 'refund', created: now(), ...nulls('receipt_number', 'source_transfer_reversal', 'transfer_reversal'),
    amount, balance_transaction: pending ? null : newId('txn'), charge: ch.id, currency: ch.currency,
    destination_details: { card: { reference_status: 'pending', reference_type: 'acquirer_reference_number', type: 'refund' }, type: 'card' },
    metadata: mergeMetadata({}, p.metadata), payment_intent: ch.payment_intent, reason: p.reason || null,
    status: pending ? 'pending' : 'succeeded',
  }));
  ch.amount_refunded += amount;
  ch.refunded = ch.amount_refunded >= ch.amount_captured;
  acct.stats.refunds_total++;
  acct.stats.amount_refunded += amount;
  emit(ctx, 'charge.refunded', ch);
  emit(ctx, 'refund.created', re);
  return re;
}

function createSetupIntent(ctx) {
  const { acct, params: p } = ctx;
  const customer = lookupCustomer(acct, p.customer);
  const si = newSetupIntent(acct, p, customer);
  if (p.payment_method) {
    const pm = resolvePaymentMethod(acct, p.payment_method);
    Object.assign(si, { payment_method: pm.id, status: 'requires_confirmation' });
    if (p.confirm) confirmSetup(ctx, si, pm);
  } else if (p.confirm) {
    throw invalid("You cannot confirm this SetupIntent because it's missing a payment method.", null, 'setup_intent_unexpected_state');
  }
  return si;
}

// SetupIntent confirmation (create with confirm=true): 3-D Secure cards
// wait for the customer, declining cards fail, the rest are saved.
function confirmSetup(ctx, si, pm) {
  const card = ctx.acct.meta.get(pm.id).card;
  if (card.auth) {
    si.status = 'requires_action';
    si.next_action = threeDSecureAction(null);
    emit(ctx, 'setup_intent.requires_action', si);
  } else if (card.decline && !card.setupOk) {
    const [code, declineCode] = card.decline;
    const err = { type: 'card_error', code, doc_url: docUrl(code), message: declineMessage(code, declineCode), payment_method: clone(pm) };
    if (declineCode) err.decline_code = declineCode;
    Object.assign(si, { status: 'requires_payment_method', payment_method: null, last_setup_error: err });
    emit(ctx, 'setup_intent.setup_failed', si);
    throw new ApiError(402, { ...err, setup_intent: clone(si) });
  } else {
    completeSetup(ctx, si, pm);
  }
}

function completeSetup(ctx, si, pm) {
  if (si.customer) pm.customer = si.customer;
  ctx.acct.meta.get(pm.id).setUp = true;
  Object.assign(si, { status: 'succeeded', payment_method: pm.id, next_action: null, last_setup_error: null });
  emit(ctx, 'setup_intent.succeeded', si);
}

// GET /v1/payment_intents/search: the clauses of Stripe's search query
// language that name a field exactly — metadata['key']:'value', status:'x',
// customer:'cus_…' — joined by AND; anything else is refused as Stripe
// refuses a query it cannot parse. Newest first, as Stripe answers.
const SEARCH_CLAUSE = /^(?:metadata\['([^'\\]+)'\]|(status|customer|currency)):'([^'\\]*)'$/;
function searchPaymentIntents(ctx) {
  const { acct, params: p } = ctx;
  const limit = p.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalid('Invalid integer: limit must be between 1 and 100', 'limit');
  if (p.page !== undefined) throw invalid('This fake answers every search in one page; page is not supported.', 'page');
  const clauses = String(p.query).split(/\s+AND\s+/).map((c) => {
    const m = SEARCH_CLAUSE.exec(c.trim());
    if (!m) throw invalid(`We could not parse your search query: ${c.trim()}`, 'query', 'parameter_invalid_string');
    return m[1] !== undefined ? (pi) => pi.metadata?.[m[1]] === m[3] : (pi) => String(pi[m[2]] ?? '') === m[3];
  });
  const data = [...acct.objects.values()]
    .filter((o) => o.object === 'payment_intent' && clauses.every((ok) => ok(o)))
    .sort((a, b) => b.created - a.created)
    .slice(0, limit);
  return { object: 'search_result', data, has_more: false, next_page: null, url: '/v1/payment_intents/search' };
}

// GET /v1/refunds: the key's refunds, newest first, optionally of one
// `payment_intent` or `charge`, `limit` (1-100, default 10) at a time and
// paged with `starting_after`, as Stripe's list endpoints answer. Refunds
// made in the same second keep the order they were made in. `expand[]`
// takes `data.<field>`, as Stripe's lists do.
function listRefunds(ctx) {
  const { acct, params: p } = ctx;
  const limit = p.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalid('Invalid integer: limit must be between 1 and 100', 'limit');
  for (const unsupported of ['ending_before', 'created']) {
    if (p[unsupported] !== undefined) throw invalid(`This fake lists refunds forward only; ${unsupported} is not supported.`, unsupported);
  }
  const all = [...acct.objects.values()]
    .filter((o) => o.object === 'refund' && (!p.payment_intent || o.payment_intent === p.payment_intent) && (!p.charge || o.charge === p.charge))
    .reverse()
    .sort((a, b) => b.created - a.created);
  let from = 0;
  if (p.starting_after !== undefined) {
    from = all.findIndex((o) => o.id === p.starting_after) + 1;
    if (from === 0) throw noSuch('refund', p.starting_after, 'starting_after');
  }
  const page = all.slice(from, from + limit);
  const paths = (p.expand || []).map((e) => e.replace(/^data\./, ''));
  return { object: 'list', data: page.map((o) => expand(acct, o, paths)), has_more: from + limit < all.length, url: '/v1/refunds' };
}

// Operation (as in spec_subset.json) → [handler, type of object answered].
const ROUTES = {
  'POST /v1/customers': [(ctx) => newCustomer(ctx.acct, ctx.params), 'customer'],
  'GET /v1/customers/{customer}': [(ctx) => must(ctx.acct, ctx.pathParams.customer, 'customer', 'customer'), 'customer'],
  'POST /v1/customers/{customer}': [(ctx) => updateCustomer(ctx.acct, must(ctx.acct, ctx.pathParams.customer, 'customer', 'customer'), ctx.params), 'customer'],
  'POST /v1/setup_intents': [createSetupIntent, 'setup_intent'],
  'GET /v1/setup_intents/{intent}': [(ctx) => must(ctx.acct, ctx.pathParams.intent, 'setup_intent', 'intent'), 'setup_intent'],
  'POST /v1/payment_intents': [createPaymentIntent, 'payment_intent'],
  'GET /v1/payment_intents/search': [searchPaymentIntents, 'search_result'],
  'GET /v1/payment_intents/{intent}': [(ctx) => must(ctx.acct, ctx.pathParams.intent, 'payment_intent', 'intent'), 'payment_intent'],
  'POST /v1/payment_intents/{intent}/confirm': [(ctx) => confirmIntent(ctx, must(ctx.acct, ctx.pathParams.intent, 'payment_intent', 'intent'), ctx.params), 'payment_intent'],
  'POST /v1/payment_intents/{intent}/cancel': [(ctx) => cancelIntent(ctx, must(ctx.acct, ctx.pathParams.intent, 'payment_intent', 'intent'), ctx.params), 'payment_intent'],
  'GET /v1/refunds': [listRefunds, 'refund_list'],
  'POST /v1/refunds': [createRefund, 'refund'],
  'GET /v1/refunds/{refund}': [(ctx) => must(ctx.acct, ctx.pathParams.refund, 'refund', 'refund'), 'refund'],
  'GET /v1/charges/{charge}': [(ctx) => must(ctx.acct, ctx.pathParams.charge, 'charge', 'charge'), 'charge'],
};

// expand[]=a.b: each step that is an id of a stored object becomes the
// object; Stripe's limit is four levels.
function checkExpand(type, paths) {
  for (const p of paths || []) {
    const segs = p.split('.');
    const ok = segs.length <= 4 && (EXPANDABLE[type] || []).some((e) => p === e || p.startsWith(`${e}.`));
    if (!ok) throw invalid(`This property cannot be expanded (${p}).`, 'expand');
  }
}

function expand(acct, obj, paths) {
  const out = clone(obj);
  for (const p of paths || []) {
    let node = out;
    const segs = p.split('.');
    segs.forEach((seg, i) => {
      if (!isObject(node)) return;
      if (typeof node[seg] === 'string' && acct.objects.has(node[seg])) node[seg] = clone(acct.objects.get(node[seg]));
      node = i < segs.length - 1 ? node[seg] : null;
    });
  }
  return out;
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------
function send(res, status, body, headers = {}) {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, no-store', ...headers });
  res.end(text);
}

function errorBody(fields, reqId) {
  const f = { ...fields };
  if (f.type !== 'api_error' || f.code) f.request_log_url = `https://dashboard.stripe.com/test/logs/${reqId}?t=${now()}`;
  return { error: f };
}

// Reads the body; over MAX_BODY it is drained and dropped (so the client
// gets the 413 rather than a reset) and null is returned.
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? null : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function bearerKey(header) {
  if (!header) return { key: null };
  const [scheme, value = ''] = header.split(/\s+/, 2);
  if (/^bearer$/i.test(scheme)) return { key: value };
  // Stripe also takes the key as the user name of Basic auth.
  if (/^basic$/i.test(scheme)) return { key: Buffer.from(value, 'base64').toString('utf8').split(':')[0] };
  return { key: null };
}

function authError(header) {
  const { key } = bearerKey(header);
  if (!key) {
    return 'You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth '
      + "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
      + 'or we can help at https://support.stripe.com/.';
  }
  if (KEY_RE.test(key)) return null;
  return `Invalid API Key provided: ${key.slice(0, 8)}${'*'.repeat(Math.max(0, Math.min(key.length - 12, 20)))}${key.slice(-4)}`;
}

// The first fault matching a request, its count used up by one.
function takeFault(apiKey, method, path) {
  const f = faults.find((x) => x.remaining > 0 && (!x.api_key || x.api_key === apiKey)
    && (!x.path_prefix || path.startsWith(x.path_prefix)) && (!x.method || x.method === method));
  if (f) f.remaining--;
  return f;
}

const FAULT_BODIES = {
  429: { type: 'invalid_request_error', code: 'rate_limit', message: 'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.' },
  500: { type: 'api_error', message: 'An unknown error occurred' },
  503: { type: 'api_error', message: 'Stripe is temporarily unavailable. Please try again later.' },
};

// Applies a fault; false when the request should still be answered
// normally (a delay).
async function applyFault(f, req, res, finish) {
  if (f.delay_ms) {
    await sleep(f.delay_ms);
    return false;
  }
  if (f.drop) {
    finish(null, null);
    req.socket.destroy();
    return true;
  }
  finish(f.status, { error: FAULT_BODIES[f.status] || { type: 'api_error', message: `Fault injected by the fake (HTTP ${f.status})` } });
  return true;
}

async function handleApi(req, res, url, raw, ctx) {
  const method = req.method;
  const { key } = bearerKey(req.headers.authorization);
  const authProblem = authError(req.headers.authorization);
  const acct = authProblem ? null : account(key);
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  const entry = {
    request_id: ctx.reqId, api_key: key, method, path: url.pathname, query: url.search.slice(1), headers, raw_body: raw.toString('utf8'),
    params: null, status: null, error: null, idempotent_replayed: false, fault: null, at: new Date().toISOString(),
  };
  (acct ? acct.requests : anonymousRequests).push(entry);
  const reply = { 'Stripe-Version': req.headers['stripe-version'] || API_VERSION };
  const finish = (status, body, extra = {}) => {
    entry.status = status;
    if (body?.error) entry.error = { type: body.error.type, code: body.error.code ?? null, param: body.error.param ?? null };
    if (status !== null) send(res, status, body, { ...reply, ...extra });
  };
  const fail = (e) => finish(e.status, errorBody(e.fields, ctx.reqId));

  if (authProblem) return finish(401, { error: { type: 'invalid_request_error', message: authProblem } });
  ctx.acct = acct;
  ctx.api = true;
  let params;
  try {
    params = decodeForm(method === 'GET' ? url.search.slice(1) : raw.toString('utf8'));
    entry.params = params;
  } catch (e) {
    if (!(e instanceof FormError)) throw e;
    return fail(invalid(`Invalid request body: ${e.message}`, e.param));
  }
  const found = findOperation(SPEC, method, url.pathname);
  if (!found || !ROUTES[found.key]) {
    const msg = `Unrecognized request URL (${method}: ${url.pathname}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`;
    return fail(invalid(msg, null, null, 404));
  }
  const idemKey = method === 'POST' ? req.headers['idempotency-key'] ?? null : null;
  ctx.idemKey = idemKey;
  if (idemKey !== null) reply['Idempotency-Key'] = idemKey;
  if (idemKey !== null && (idemKey.length === 0 || idemKey.length > 255)) {
    return fail(invalid('Idempotency-Key must be between 1 and 255 characters long.', null));
  }

  const fault = takeFault(acct.apiKey, method, url.pathname);
  if (fault) entry.fault = fault.id;
  if (fault && fault.mode === 'before' && await applyFault(fault, req, res, finish)) return;

  const canon = canonical(params);
  const seen = idemKey !== null ? acct.idempotency.get(idemKey) : undefined;
  if (seen && (seen.op !== found.key || seen.canon !== canon)) {
    const why = seen.op === found.key ? 'with the same parameters they were first used with'
      : `for the same endpoint they were first used for ('${seen.op}' vs '${found.key}')`;
    const message = `Keys for idempotent requests can only be used ${why}. Try using a key other than '${idemKey}' if you meant to execute a different request.`;
    return fail(new ApiError(400, { type: 'idempotency_error', message }));
  }
  let status;
  let body;
  if (seen) {
    entry.idempotent_replayed = true;
    Object.assign(reply, { 'Idempotent-Replayed': 'true', 'Original-Request': seen.reqId });
    ({ status, body } = seen);
  } else {
    const checked = checkParams(found.op, params);
    const [handler, type] = ROUTES[found.key];
    try {
      if (checked.problems.length) {
        const pr = checked.problems[0];
        return fail(invalid(pr.message, pr.param, pr.code));
      }
      Object.assign(ctx, { params: checked.params, pathParams: found.pathParams });
      checkExpand(type, ctx.params.expand);
    } catch (e) {
      if (e instanceof ApiError) return fail(e);
      throw e;
    }
    // From here the request has executed: whatever it answers is kept for
    // replays of its Idempotency-Key, as Stripe does.
    try {
      status = 200;
      body = expand(acct, handler(ctx), ctx.params.expand);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      status = e.status;
      body = errorBody(e.fields, ctx.reqId);
    }
    if (idemKey !== null) acct.idempotency.set(idemKey, { op: found.key, canon, status, body, reqId: ctx.reqId });
  }
  if (fault && fault.mode === 'after' && await applyFault(fault, req, res, finish)) return;
  finish(status, body);
}

// ---------------------------------------------------------------------------
// Control endpoints (/_fake/…): JSON in and out, no auth.
// ---------------------------------------------------------------------------
// The object a control endpoint names; ctx.acct becomes its account.
function controlObject(ctx, id, apiKey, type) {
  ctx.acct = accountOf(id, apiKey);
  const o = ctx.acct && get(ctx.acct, id, type);
  if (!o) throw noSuch(type, id, 'id', 404);
  return o;
}

function byKey(apiKey, pick) {
  if (apiKey) return accounts.has(apiKey) ? pick(accounts.get(apiKey)) : [];
  return [...accounts.values()].flatMap(pick);
}

function sumStats(apiKey) {
  if (apiKey) return accounts.get(apiKey)?.stats ?? emptyStats();
  const total = emptyStats();
  for (const a of accounts.values()) {
    for (const [k, v] of Object.entries(a.stats)) {
      if (k === 'charges') for (const [ik, n] of Object.entries(v)) total.charges[ik] = (total.charges[ik] || 0) + n;
      else total[k] += v;
    }
  }
  return total;
}

function addFault(b) {
  const mode = b.mode || 'before';
  if (!['before', 'after'].includes(mode)) throw invalid('mode must be "before" or "after"', 'mode');
  const f = {
    id: newId('flt', 14), api_key: b.api_key || null, path_prefix: b.path_prefix || null, method: b.method ? String(b.method).toUpperCase() : null,
    mode, remaining: b.count ?? 1, status: null, drop: false, delay_ms: null,
  };
  if (!Number.isInteger(f.remaining) || f.remaining < 1) throw invalid('count must be a positive integer', 'count');
  if (b.status === 'drop' || b.drop === true) f.drop = true;
  else if (b.delay_ms !== undefined || b.status === 'delay_ms') {
    f.delay_ms = Number(b.delay_ms);
    if (!Number.isInteger(f.delay_ms) || f.delay_ms < 1) throw invalid('delay_ms must be a positive integer', 'delay_ms');
  } else if (Number.isInteger(b.status) && b.status >= 400 && b.status <= 599) f.status = b.status;
  else throw invalid('give status (an HTTP error status such as 500, 429, 503), "drop" or delay_ms', 'status');
  faults.push(f);
  return f;
}

// Forgets everything of one key (or of all): objects, events, logs,
// faults, endpoints registered through the API, deliveries not yet made.
// Endpoints from the command line stay.
function reset(apiKey) {
  const mine = (x) => !apiKey || x === apiKey;
  for (const e of endpoints.filter((x) => mine(x.apiKey))) {
    e.gen++;
    e.queue = [];
  }
  endpoints = endpoints.filter((e) => !mine(e.apiKey) || e.source !== 'api');
  faults = faults.filter((f) => !mine(f.api_key));
  if (apiKey) accounts.delete(apiKey);
  else {
    accounts.clear();
    anonymousRequests.length = 0;
  }
}

function handleControl(req, url, raw, ctx) {
  const q = Object.fromEntries(url.searchParams);
  let b = {};
  if (req.method === 'POST' && raw.length) {
    try {
      b = JSON.parse(raw.toString('utf8'));
    } catch {
      throw invalid('The body is not valid JSON.', null, 'invalid_json');
    }
    if (!isObject(b)) throw invalid('The body must be a JSON object.', null, 'invalid_json');
  }
  const route = `${req.method} ${url.pathname.replace(/\/(seti|pi|ch)_[A-Za-z0-9]+\//, '/{id}/').replace(/^\/_fake\/payment_methods\/[A-Za-z0-9_]+\//, '/_fake/payment_methods/{alias}/')}`;
  const id = url.pathname.split('/')[3];
  switch (route) {
    case 'POST /_fake/webhook_endpoints':
      return [200, endpointJson(addEndpoint(b.api_key, b.url, b.secret, 'api'))];
    case 'GET /_fake/webhook_endpoints':
      return [200, endpoints.filter((e) => !q.api_key || e.apiKey === q.api_key).map(endpointJson)];
    case 'POST /_fake/setup_intents/{id}/succeed': {
      const si = controlObject(ctx, id, b.api_key, 'setup_intent');
      if (['succeeded', 'canceled'].includes(si.status)) throw invalid(`This SetupIntent is already ${si.status}.`, null, 'setup_intent_unexpected_state');
      const pm = b.payment_method ? resolvePaymentMethod(ctx.acct, b.payment_method)
        : get(ctx.acct, si.payment_method, 'payment_method') || mintPaymentMethod(ctx.acct, 'pm_card_visa');
      completeSetup(ctx, si, pm);
      return [200, si];
    }
    case 'POST /_fake/payment_methods/{alias}/script': {
      // The next confirmations with this test card (per key) end as listed:
      // "succeed", or a decline_code of card_declined ("insufficient_funds").
      const alias = ALIASES[id] || id;
      if (!CARDS[alias]) throw invalid(`No such test card: ${id}`, 'alias', 'resource_missing', 404);
      if (!b.api_key || !Array.isArray(b.outcomes) || !b.outcomes.every((o) => typeof o === 'string' && o)) {
        throw invalid('api_key and outcomes (an array of "succeed" or decline codes) are required.', 'outcomes');
      }
      account(b.api_key).scripts.set(alias, [...b.outcomes]);
      return [200, { alias, outcomes: b.outcomes }];
    }
    case 'POST /_fake/payment_intents/{id}/authenticate': {
      const pi = controlObject(ctx, id, b.api_key, 'payment_intent');
      return [200, authenticate(ctx, pi, b.outcome || 'succeed')];
    }
    case 'POST /_fake/charges/{id}/dispute': {
      const ch = controlObject(ctx, id, b.api_key, 'charge');
      const reason = b.reason || 'fraudulent';
      if (!DISPUTE_REASONS.has(reason)) throw invalid(`Invalid reason: must be one of ${[...DISPUTE_REASONS].join(', ')}`, 'reason');
      if (ch.status !== 'succeeded') throw invalid(`Charge ${ch.id} did not succeed; it cannot be disputed.`, null);
      if (ch.disputed) throw invalid(`Charge ${ch.id} is already disputed.`, null);
      const dp = newDispute(ctx.acct, ch, reason, b.inquiry === true);
      emit(ctx, 'charge.dispute.created', dp);
      return [200, dp];
    }
    case 'POST /_fake/idempotency/expire': {
      // Stripe forgets an Idempotency-Key 24 hours after its first use:
      // every key of api_key is forgotten now, as if that time had passed.
      if (!b.api_key) throw invalid('api_key is required.', 'api_key');
      const a = accounts.get(b.api_key);
      const expired = a ? a.idempotency.size : 0;
      if (a) a.idempotency.clear();
      return [200, { expired }];
    }
    case 'GET /_fake/stats':
      return [200, sumStats(q.api_key)];
    case 'GET /_fake/requests':
      return [200, q.api_key ? byKey(q.api_key, (a) => a.requests) : [...anonymousRequests, ...byKey(null, (a) => a.requests)]];
    case 'GET /_fake/events':
      return [200, byKey(q.api_key, (a) => a.events).filter((r) => !q.type || r.event.type === q.type)];
    case 'POST /_fake/faults':
      return [200, addFault(b)];
    case 'GET /_fake/faults':
      return [200, faults];
    case 'DELETE /_fake/faults': {
      const before = faults.length;
      faults = faults.filter((f) => q.api_key && f.api_key !== q.api_key);
      return [200, { deleted: before - faults.length }];
    }
    case 'POST /_fake/reset':
      reset(b.api_key);
      return [200, { reset: true }];
    default:
      throw invalid(`Unrecognized control URL (${req.method}: ${url.pathname}). See tests/fakes/stripe/README.md.`, null, null, 404);
  }
}

async function onRequest(req, res) {
  const ctx = { reqId: newId('req', 14), outbox: [], acct: null, api: false, idemKey: null };
  res.setHeader('Request-Id', ctx.reqId);
  // Events made while answering go out once the answer is on its way.
  const flush = () => setImmediate(() => flushOutbox(ctx));
  res.on('finish', flush);
  res.on('close', flush);
  try {
    const raw = await readBody(req);
    const url = new URL(req.url, 'http://127.0.0.1');
    if (raw === null) {
      return send(res, 413, errorBody({ type: 'invalid_request_error', message: `Request bodies are limited to ${MAX_BODY} bytes.` }, ctx.reqId));
    }
    if (url.pathname.startsWith('/v1/')) {
      // Stripe's own time to answer, for benchmarks (--latency-ms).
      if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
      return await handleApi(req, res, url, raw, ctx);
    }
    if (url.pathname.startsWith('/_fake/')) {
      try {
        const [status, body] = handleControl(req, url, raw, ctx);
        return send(res, status, body);
      } catch (e) {
        if (e instanceof ApiError) return send(res, e.status, { error: e.fields });
        throw e;
      }
    }
    return send(res, 404, errorBody({ type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${url.pathname}).` }, ctx.reqId));
  } catch (e) {
    // A bug in the fake answers 500 rather than taking the process down.
    console.error(`stripe-fake: ${req.method} ${req.url}: ${e.stack || e}`);
    return send(res, 500, { error: { type: 'api_error', message: `stripe-fake internal error: ${e.message}` } });
  }
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------
function parseWebhookSpec(s) {
  const eq = s.indexOf('=');
  const bar = s.lastIndexOf('|');
  if (eq < 1 || bar < eq) throw new Error(`--webhook wants KEY=URL|SECRET, got ${s}`);
  return [s.slice(0, eq), s.slice(eq + 1, bar), s.slice(bar + 1)];
}

// Milliseconds every /v1 answer waits (--latency-ms): 0, or Stripe's own
// few hundred when a benchmark wants the charger to meet real latency.
let latencyMs = 0;

function main(argv) {
  let port = process.env.STRIPE_FAKE_PORT ? Number(process.env.STRIPE_FAKE_PORT) : 0;
  const hooks = (process.env.STRIPE_FAKE_WEBHOOKS || '').split(/\s+/).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => (inline !== undefined ? inline : argv[++i]);
    if (flag === '--port') port = Number(value());
    else if (flag === '--webhook') hooks.push(value());
    else if (flag === '--latency-ms') latencyMs = Number(value());
    else {
      console.error(`usage: server.mjs --port N [--latency-ms N] [--webhook KEY=URL|SECRET]...  (unknown argument ${argv[i]})`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(latencyMs) || latencyMs < 0 || latencyMs > 60000) {
    console.error(`stripe-fake: bad --latency-ms ${latencyMs}`);
    process.exit(2);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`stripe-fake: bad port ${port}`);
    process.exit(2);
  }
  try {
    for (const h of hooks) addEndpoint(...parseWebhookSpec(h), 'config');
  } catch (e) {
    console.error(`stripe-fake: ${e.message}`);
    process.exit(2);
  }
  const server = http.createServer(onRequest);
  server.keepAliveTimeout = 5000;
  server.on('clientError', (err, socket) => {
    if (socket.writable) {
      const body = JSON.stringify({ error: { type: 'invalid_request_error', message: `Malformed HTTP request: ${err.code || err.message}` } });
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    } else {
      socket.destroy();
    }
  });
  server.on('error', (e) => {
    console.error(`stripe-fake: ${e.message}`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () => {
    console.log(`stripe-fake listening on 127.0.0.1:${server.address().port}`);
  });
  const stop = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main(process.argv.slice(2));
