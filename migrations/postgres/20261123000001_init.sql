-- ltv-tagger state store, PostgreSQL flavour. Times are Unix epoch milliseconds.

create table job (
    id              bigint generated always as identity primary key,
    source          text    not null,
    ticket_id       text    not null,
    requester_email text,
    requester_id    text,
    ticket_tags     text    not null default '',
    event_count     bigint  not null default 1,
    state           text    not null default 'queued',
    attempts        bigint  not null default 0,
    run_at          bigint  not null,
    lease_owner     text,
    lease_until     bigint,
    last_error      text,
    created_at      bigint  not null,
    updated_at      bigint  not null,
    constraint job_state_ck check (state in ('queued', 'running', 'done', 'dead', 'merged'))
);
-- At most one waiting job per ticket: later events for it are coalesced into that job.
create unique index job_queued_ticket_uq on job (source, ticket_id) where state = 'queued';
create index job_due_ix on job (state, run_at);

create table inbox (
    id          bigint generated always as identity primary key,
    source      text   not null,
    dedupe_key  text   not null,
    ticket_id   text   not null,
    event_type  text   not null,
    body        text   not null,
    job_id      bigint references job (id),
    received_at bigint not null,
    constraint inbox_dedupe_uq unique (source, dedupe_key)
);
create index inbox_received_ix on inbox (received_at);

create table audit (
    id           bigint generated always as identity primary key,
    job_id       bigint  not null,
    source       text    not null,
    ticket_id    text    not null,
    email        text,
    ltv          text,
    orders       bigint,
    disputes     bigint,
    tags_decided text    not null default '',
    tags_written text    not null default '',
    outcome      text    not null,
    detail       text,
    attempts     bigint  not null,
    event_count  bigint  not null,
    created_at   bigint  not null,
    updated_at   bigint  not null
);
create index audit_ticket_ix on audit (source, ticket_id);

create table rate_budget (
    account      text primary key,
    tokens       double precision not null,
    refilled_at  bigint not null,
    paused_until bigint not null default 0,
    granted      bigint  not null default 0,
    updated_at   bigint not null
);
