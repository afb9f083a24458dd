-- Replaying rejects (chronicle replay-rejects, docs/adr/0013-crash-loop-and-replay.md): what a replay
-- needs to rebuild the input exactly, and what the last replay of each reject did.

-- How `payload` holds the raw input: `utf8` (the text as received) or `base64` (bytes that are not
-- text: invalid UTF-8, an OTLP protobuf body, a reject Postgres refused). Rows written before this
-- migration are marked from what their reason and detail said.
ALTER TABLE chronicle_rejects
  ADD COLUMN payload_encoding text NOT NULL DEFAULT 'utf8' CHECK (payload_encoding IN ('utf8', 'base64')),
  -- The time an input without a timestamp takes (the JetStream message's own time, the HTTP receive
  -- time), so a replay stores the event the first delivery would have stored; null when unknown.
  ADD COLUMN input_time timestamptz,
  -- The last replay of the reject, and its outcome (stored, duplicate, invalid: <reason>, skipped: <why>).
  ADD COLUMN replayed_at timestamptz,
  ADD COLUMN replay_result text;
UPDATE chronicle_rejects SET payload_encoding = 'base64'
WHERE reason = 'unstorable' OR detail LIKE '%(payload: the body, base64)%'
  OR detail LIKE '%(payload: the message, base64)%';
