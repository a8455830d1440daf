-- Questions people ask the audit store, as SQL for PostgreSQL and for SQLite (the default).
-- Tables: deliveries (one row per record version: the outbox and the message trail),
--         audit_events (polls, logons, bad rows, rate limits, alerts), watermarks.
-- Times are UTC. Date arithmetic differs between the two databases, so those questions come in
-- two forms; the others are the same on both. Each query runs in the test suite against a store
-- filled by the demo's data (tests/test_audit_queries.py), so the examples here are real keys.

-- name: posted_yesterday
-- What was posted to #ap-invoices yesterday?
-- postgresql:
SELECT sent_at, entity, record_key, event, permalink
FROM deliveries
WHERE channel = '#ap-invoices' AND status = 'sent'
  AND sent_at >= CURRENT_DATE - 1 AND sent_at < CURRENT_DATE
ORDER BY sent_at;
-- sqlite:
SELECT sent_at, entity, record_key, event, permalink
FROM deliveries
WHERE channel = '#ap-invoices' AND status = 'sent'
  AND sent_at >= date('now', '-1 day') AND sent_at < date('now')
ORDER BY sent_at;

-- name: posted_today
-- What was posted to #ap-invoices today, newest first?
-- postgresql:
SELECT sent_at, entity, record_key, event, permalink
FROM deliveries
WHERE channel = '#ap-invoices' AND status = 'sent' AND sent_at >= CURRENT_DATE
ORDER BY sent_at DESC;
-- sqlite:
SELECT sent_at, entity, record_key, event, permalink
FROM deliveries
WHERE channel = '#ap-invoices' AND status = 'sent' AND sent_at >= date('now')
ORDER BY sent_at DESC;

-- name: messages_about_one_invoice
-- Every message about invoice INV-88213 of supplier 0000001 (SYSPRO keys are Supplier|Invoice).
-- both:
SELECT created_at, event, status, channel, slack_ts, permalink, changes
FROM deliveries
WHERE source = 'syspro' AND entity = 'ap_invoice' AND record_key = '0000001|INV-88213'
ORDER BY id;

-- name: failed_this_week
-- What failed this week, and why?
-- postgresql:
SELECT updated_at, source, company, entity, record_key, channel, status, last_error
FROM deliveries
WHERE status IN ('failed', 'dead') AND updated_at >= now() - interval '7 days'
ORDER BY updated_at DESC;
-- sqlite:
SELECT updated_at, source, company, entity, record_key, channel, status, last_error
FROM deliveries
WHERE status IN ('failed', 'dead') AND updated_at >= datetime('now', '-7 days')
ORDER BY updated_at DESC;

-- name: quarantined
-- Rows the ERP sent that could not be used (quarantined), with the reason.
-- both:
SELECT at, source, company, entity, record_key, message, details
FROM audit_events
WHERE kind = 'bad_record'
ORDER BY at DESC;

-- name: filtered
-- Filtered records and the rule (or the first-run baseline) that held them back.
-- both:
SELECT source, entity, reason, COUNT(*) AS records
FROM deliveries
WHERE status = 'filtered' AND dry_run = false
GROUP BY source, entity, reason
ORDER BY source, entity, reason;

-- name: watermarks
-- How far each entity has read, and when it last moved.
-- both:
SELECT source, company, entity, kind, value, updated_at FROM watermarks ORDER BY source, company, entity;

-- name: polls_last_day
-- Polls of the last day: what each read and produced (details is JSON text).
-- postgresql:
SELECT at, source, company, entity, message FROM audit_events
WHERE kind = 'poll' AND at >= now() - interval '1 day' ORDER BY at DESC;
-- sqlite:
SELECT at, source, company, entity, message FROM audit_events
WHERE kind = 'poll' AND at >= datetime('now', '-1 day') ORDER BY at DESC;

-- name: sessions
-- Logons, re-logons (session expired or evicted), logoffs and refusals.
-- both:
SELECT at, kind, source, company, message, details FROM audit_events
WHERE kind IN ('logon', 'relogon', 'logoff', 'auth_failed', 'access_denied') ORDER BY at DESC LIMIT 50;

-- name: stuck
-- Is anything stuck? The oldest delivery not yet sent, per channel.
-- both:
SELECT channel, status, COUNT(*) AS records, MIN(created_at) AS oldest
FROM deliveries
WHERE status IN ('pending', 'sending') AND dry_run = false
GROUP BY channel, status
ORDER BY oldest;

-- name: summaries
-- The latest scheduled summaries posted or attempted: one row per summary and slot.
-- both:
SELECT summary, slot, documents, ts, attempted_at, posted_at FROM summary_posts
ORDER BY slot DESC LIMIT 50;
