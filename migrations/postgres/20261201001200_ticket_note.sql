-- The tickets that already carry the service's internal note: it is written once per ticket.
create table ticket_note (
    source      text    not null,
    ticket_id   text    not null,
    created_at  bigint  not null,
    constraint ticket_note_pk primary key (source, ticket_id)
);
