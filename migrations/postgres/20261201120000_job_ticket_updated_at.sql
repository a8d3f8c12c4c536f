-- The ticket's `updated_at` as the job's latest event saw it (Zendesk), sent back as
-- `updated_stamp` with `safe_update`: a write over a concurrent change answers 409 instead of
-- losing it. Null: no stamp known (a plain write).
alter table job add column ticket_updated_at text;
