-- The claim checks "is another job of this ticket running?" for each candidate: look it up by ticket.
create index job_ticket_ix on job (source, ticket_id, state);
