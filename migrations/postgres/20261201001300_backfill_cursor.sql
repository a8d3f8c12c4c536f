-- Where a `backfill` run stopped: one row per helpdesk and listing (the arguments that chose the
-- tickets), so a rerun with the same arguments resumes after a kill.
create table backfill_cursor (
    source       text    not null,
    listing      text    not null,
    cursor       text,
    queued       bigint  not null default 0,
    created_after bigint,
    finished_at  bigint,
    created_at   bigint  not null,
    updated_at   bigint  not null,
    constraint backfill_cursor_pk primary key (source, listing)
);
