-- Questions people ask the audit store, as SQL that runs on SQLite and PostgreSQL.
-- Tables: deliveries (one row per record version: the outbox and the message trail),
--         audit_events (polls, logons, bad rows, rate limits, alerts), watermarks.

-- What was posted to #ap-invoices yesterday (UTC)?
SELECT sent_at, entity, record_key, event, permalink
FROM deliveries
WHERE channel = '#ap-invoices' AND status = 'sent'
  AND sent_at >= CURRENT_DATE - 1 AND sent_at < CURRENT_DATE
ORDER BY sent_at;
-- (SQLite: use date('now','-1 day') and date('now') instead of CURRENT_DATE - 1 and CURRENT_DATE.)

-- Every message about invoice 000123 of supplier 0000012 (SYSPRO keys are Supplier|Invoice).
SELECT created_at, event, status, channel, slack_ts, permalink, changes
FROM deliveries
WHERE entity = 'ap_invoice' AND record_key = '0000012|000123'
ORDER BY id;

-- What failed this week, and why?
SELECT created_at, source, entity, record_key, channel, status, last_error
FROM deliveries
WHERE status IN ('failed', 'dead') AND created_at >= CURRENT_DATE - 7
ORDER BY created_at DESC;

-- Rows the ERP sent that could not be used (quarantined), with the reason.
SELECT at, source, company, entity, record_key, message, details
FROM audit_events
WHERE kind = 'bad_record'
ORDER BY at DESC;

-- Filtered records and the rule that filtered them.
SELECT entity, reason, COUNT(*) AS records
FROM deliveries
WHERE status = 'filtered'
GROUP BY entity, reason;

-- How far each entity has read, and when it last moved.
SELECT source, company, entity, kind, value, updated_at FROM watermarks ORDER BY source, entity;

-- Polls of the last day: rows seen and what they produced (details is JSON text).
SELECT at, source, entity, message FROM audit_events WHERE kind = 'poll' ORDER BY at DESC LIMIT 50;

-- Logons, re-logons (session expired or evicted), logoffs and authentication failures.
SELECT at, kind, source, company, details FROM audit_events
WHERE kind IN ('logon', 'relogon', 'logoff', 'auth_failed') ORDER BY at DESC LIMIT 50;

-- Is anything stuck? The oldest delivery not yet sent.
SELECT MIN(created_at) AS oldest_pending FROM deliveries WHERE status IN ('pending', 'sending');
