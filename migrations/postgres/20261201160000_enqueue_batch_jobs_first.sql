-- `ltv_enqueue_batch` (see `20261201140000_enqueue_batch_function.sql` for its contract, which is
-- unchanged) without the link update: the jobs are upserted first, and each new inbox row is
-- inserted with its job's id, so every inbox row is written once instead of inserted and then
-- updated (a second row version, its index entries and a foreign-key check per row). The
-- PostgreSQL work per batch fell to about two thirds (BENCHMARKS.md, "Group commit").
--
-- Which events are new is now decided before the inbox insert: a key already stored (in this
-- statement's snapshot) or earlier in the batch is a duplicate and folds into no job. The inbox
-- insert still has the last word: a delivery that another transaction stored meanwhile (the same
-- delivery committed by two replicas at once) conflicts, waits for that transaction and is
-- answered `duplicate`; its job was upserted all the same, so that job's `event_count` counts the
-- delivery twice (the count is informational; tags and requester are the delivery's own).
--
-- Rows are locked in ticket order (the job upsert) and then key order (the inbox insert), the
-- same order in every batch, so batches committed at once cannot deadlock.
create or replace function ltv_enqueue_batch(events json, now bigint)
returns table (i bigint, job_id bigint, status text)
language plpgsql
-- The statement's plan is cached per session, and often made while the tables are still empty:
-- a plan that scanned `inbox` for the stored keys (a sequential scan, or a merge anti-join over
-- the whole key index) would go on scanning it as it grows. So the stored keys are looked up one
-- event at a time (a subquery per row, not a join), and with sequential scans off each lookup is
-- a probe of the key index (`inbox_dedupe_uq`) whatever the table's size.
set enable_seqscan = off
as $$
#variable_conflict use_column
begin
    return query
    with ev as (
        select e.* from json_to_recordset(events) as e(
            i bigint, source text, key text, ticket text, type text, body text,
            email text, rid text, tags text, stamp text)
    ),
    first_key as (
        select distinct on (source, key) * from ev order by source, key, i
    ),
    -- The new events: the first of each key, and not stored before.
    kept as (
        select f.* from first_key f
        where (select x.id from inbox x where x.source = f.source and x.dedupe_key = f.key) is null
    ),
    folded as (
        select source, ticket, count(*) as n, min(kept.i) as first_i,
               (array_agg(tags order by kept.i desc))[1] as tags,
               (array_agg(stamp order by kept.i desc))[1] as stamp,
               (array_agg(email order by kept.i desc)
                    filter (where email is not null or rid is not null))[1] as email,
               (array_agg(rid order by kept.i desc)
                    filter (where email is not null or rid is not null))[1] as rid
        from kept group by source, ticket
    ),
    upserted as (
        insert into job as j (source, ticket_id, requester_email, requester_id, ticket_tags,
                              event_count, state, attempts, run_at, created_at, updated_at,
                              ticket_updated_at)
        select source, ticket, email, rid, coalesce(tags, ''), n, 'queued', 0, now, now, now,
               stamp
        from folded order by source, ticket
        on conflict (source, ticket_id) where state = 'queued'
        do update set requester_email = case when excluded.requester_email is not null
                                                  or excluded.requester_id is not null
                                             then excluded.requester_email
                                             else j.requester_email end,
                      requester_id = case when excluded.requester_email is not null
                                               or excluded.requester_id is not null
                                          then excluded.requester_id
                                          else j.requester_id end,
                      ticket_tags = excluded.ticket_tags,
                      ticket_updated_at = excluded.ticket_updated_at,
                      event_count = j.event_count + excluded.event_count,
                      updated_at = excluded.updated_at
        returning j.id, j.source, j.ticket_id, j.event_count
    ),
    -- Each new event's row, written with its job; a key stored meanwhile by another transaction
    -- conflicts and returns no row (a duplicate).
    ins as (
        insert into inbox (source, dedupe_key, ticket_id, event_type, body, received_at, job_id)
        select k.source, k.key, k.ticket, k.type, k.body, now, u.id
        from kept k join upserted u on u.source = k.source and u.ticket_id = k.ticket
        order by k.source, k.key
        on conflict (source, dedupe_key) do nothing
        returning source, dedupe_key, job_id
    )
    select e.i, ins.job_id,
           case when ins.job_id is null then 'duplicate'
                when e.i = f.first_i and u.event_count = f.n then 'queued'
                else 'coalesced' end
    from ev e
    left join kept k on k.i = e.i
    left join ins on ins.source = k.source and ins.dedupe_key = k.key
    left join folded f on f.source = e.source and f.ticket = e.ticket
    left join upserted u on u.source = e.source and u.ticket_id = e.ticket
    order by e.i;
end
$$;
