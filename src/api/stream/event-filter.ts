import type { CommittedEvent, StreamFilter } from '../../sinks/postgres/queries.js';

/**
 * The stream's filters tested in memory, with the meaning the SQL of the events list gives them
 * (eventFilterSql in src/sinks/postgres/queries.ts): exact text equality, a literal prefix, `since`
 * inclusive and `until` exclusive on the event's timestamp, and the event's agent and error flag as
 * Postgres computed them for the row (chronicle_event_agent, chronicle_is_error_event), so those two
 * rules exist once, in SQL. Timestamps are stored to the millisecond, like JavaScript Dates, so the
 * comparisons are exact. test/integration/stream.test.ts checks the stream against the list.
 */
export type EventPredicate = (event: CommittedEvent) => boolean;

/** The predicate of a filter; the parameters' timestamps are parsed once, here. */
export function compileEventFilter(filter: StreamFilter): EventPredicate {
  const since = filter.since === undefined ? undefined : Date.parse(filter.since);
  const until = filter.until === undefined ? undefined : Date.parse(filter.until);
  const { trace_id, event_type, source, trace_prefix, agent, errors } = filter;
  return ({ event }) => {
    const time = event.timestamp.getTime();
    return (
      (trace_id === undefined || event.trace_id === trace_id) &&
      (event_type === undefined || event.event_type === event_type) &&
      (source === undefined || event.source === source) &&
      (since === undefined || time >= since) &&
      (until === undefined || time < until) &&
      (trace_prefix === undefined || event.trace_id.startsWith(trace_prefix)) &&
      (agent === undefined || event.agent === agent) &&
      (errors === undefined || event.is_error === errors)
    );
  };
}
