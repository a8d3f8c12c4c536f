-- Group commit of a whole batch of events in one statement, so one round trip: `select * from
-- ltv_enqueue_batch($1::json, $2)` outside an explicit transaction is atomic on its own (all
-- stored or none). It does what the inbox commit of one event (`state/inbox.rs`) would do for
-- each event in turn: (1) the inbox rows, in key order, a key already stored or earlier in the
-- batch skipped; (2) one job upsert per ticket, in ticket order, the ticket's new events folded
-- (the latest tags and stamp, the latest requester that is named, `event_count` + the events);
-- (3) each new inbox row linked to its job. The upsert's conflict target and requester rule repeat
-- `state/inbox.rs`. Rows are locked in key and then ticket order, so batches committed at once
-- cannot deadlock.
--
-- `events` is a JSON array of objects, one per event in batch order: `i` (its 1-based position),
-- `source`, `key` (dedupe key), `ticket`, `type`, `body`, `email`, `rid` (requester id), `tags`
-- (space separated), `stamp` (the ticket's `updated_at`). One row per event comes back: `i`, the
-- job it went to (null for a duplicate) and `status`: 'queued', 'coalesced' or 'duplicate'.
create or replace function ltv_enqueue_batch(events json, now bigint)
returns table (i bigint, job_id bigint, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    linked bigint[];
    jobs bigint[];
    first_of bigint[];
    fresh boolean[];
begin
    with ev as (
        select e.* from json_to_recordset(events) as e(
            i bigint, source text, key text, ticket text, type text, body text,
            email text, rid text, tags text, stamp text)
    ),
    -- The first event holding a key is the one that may get its row.
    first_key as (
        select distinct on (source, key) * from ev order by source, key, i
    ),
    ins as (
        insert into inbox (source, dedupe_key, ticket_id, event_type, body, received_at)
        select source, key, ticket, type, body, now from first_key order by source, key
        on conflict (source, dedupe_key) do nothing
        returning id, source, dedupe_key
    ),
    kept as (
        select f.*, ins.id as inbox_id
        from first_key f join ins on ins.source = f.source and ins.dedupe_key = f.key
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
    )
    select array_agg(k.inbox_id order by k.i), array_agg(u.id order by k.i),
           array_agg(k.i order by k.i),
           array_agg(k.i = f.first_i and u.event_count = f.n order by k.i)
      into linked, jobs, first_of, fresh
    from kept k
    join folded f on f.source = k.source and f.ticket = k.ticket
    join upserted u on u.source = k.source and u.ticket_id = k.ticket;

    -- Planned afresh each call (`execute`): a plan cached while the inbox was small would keep
    -- scanning the whole table as it grows; this one looks each row up by its key.
    if linked is not null then
        execute 'update inbox set job_id = l.job_id
                 from unnest($1, $2) as l(inbox_id, job_id)
                 where inbox.id = l.inbox_id'
            using linked, jobs;
    end if;

    return query
    select e.i, r.job_id,
           case when r.job_id is null then 'duplicate'
                when r.fresh then 'queued'
                else 'coalesced' end
    from json_to_recordset(events) as e(i bigint)
    left join unnest(first_of, jobs, fresh) as r(i, job_id, fresh) on r.i = e.i
    order by e.i;
end
$$;
