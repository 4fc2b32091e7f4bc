-- 0001: the tables of the reference kill-switch applier (`warden apply-killswitch`).
-- The contract these tables make with a workflow engine is docs/killswitch-applier.md.
-- The applier runs each migration once, in one transaction, and records it in
-- schema_migrations; so this file is plain DDL, not written to be re-run.
--
-- Times are the database's clock (now()): a command is applied for ttl_ms from the
-- moment the applier applies it (design §4), never from warden's event time.
-- A command without a tenant (none today: every kill-switch rule reads tool calls,
-- which carry one) is stored with tenant_id = ''.

-- The workflow engine's own table. Created here only for the reference setup; an
-- engine that already has one keeps it and gains the two columns the applier writes.
CREATE TABLE IF NOT EXISTS workflows (
    tenant_id   text    NOT NULL,
    id          text    NOT NULL,
    is_enabled  boolean NOT NULL DEFAULT true,
    disabled_by text,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE workflows ADD COLUMN IF NOT EXISTS is_enabled boolean NOT NULL DEFAULT true;
-- The command_id that disabled the workflow; NULL when enabled or disabled by someone
-- else (the applier then never re-enables it).
ALTER TABLE workflows ADD COLUMN IF NOT EXISTS disabled_by text;

-- One row per command the applier accepted: the idempotency key (a redelivered or
-- replayed command_id finds its row and changes nothing) and the command's lifecycle.
CREATE TABLE processed_commands (
    command_id           text        PRIMARY KEY,
    tenant_id            text        NOT NULL,
    action               text        NOT NULL,
    target_kind          text        NOT NULL,
    target_id            text        NOT NULL,
    rule                 text        NOT NULL,
    -- The key that signed it; NULL when accepted unverified (--accept-unsigned).
    key_id               text,
    issued_at_ms         bigint      NOT NULL,  -- warden's event time, for reference
    ttl_ms               bigint      NOT NULL,
    applied_at           timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,  -- applied_at + ttl_ms
    -- What applying it did: disabled, took_over, already_disabled, no_such_workflow,
    -- halted, killed, tool_disabled (the last three suffixed _terminate when escalated
    -- at once).
    outcome              text        NOT NULL,
    -- Whether its end (expiry or revert) has something to undo.
    changed              boolean     NOT NULL,
    -- disable_workflow that took over a workflow another active command had disabled:
    -- that command, to hand the workflow back to if it is still in force.
    previous_disabled_by text,
    state                text        NOT NULL CHECK (state IN ('active', 'expired', 'reverted')),
    ended_at             timestamptz,
    source_topic         text        NOT NULL,
    source_partition     integer     NOT NULL,
    source_offset        bigint      NOT NULL
);
CREATE INDEX processed_commands_due ON processed_commands (expires_at) WHERE state = 'active';

-- Kill-switch rows the engine enforces: a target is stopped while a row of it has
-- state = 'active'. `mode` is how to stop an execution: 'cancel' (cooperative) first,
-- 'terminate' once escalated. `target_kind` is the command's target kind (session,
-- run, tool by default; a rule re-keyed in warden's config may name another).
CREATE TABLE halted_sessions (
    command_id   text        PRIMARY KEY REFERENCES processed_commands,
    tenant_id    text        NOT NULL,
    session_id   text        NOT NULL,
    target_kind  text        NOT NULL,
    reason       text        NOT NULL,
    halted_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    mode         text        NOT NULL CHECK (mode IN ('cancel', 'terminate')),
    escalated_at timestamptz,
    state        text        NOT NULL CHECK (state IN ('active', 'expired', 'reverted')),
    ended_at     timestamptz
);
CREATE INDEX halted_sessions_target ON halted_sessions (tenant_id, session_id) WHERE state = 'active';

CREATE TABLE killed_jobs (
    command_id   text        PRIMARY KEY REFERENCES processed_commands,
    tenant_id    text        NOT NULL,
    job_id       text        NOT NULL,
    target_kind  text        NOT NULL,
    reason       text        NOT NULL,
    killed_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    mode         text        NOT NULL CHECK (mode IN ('cancel', 'terminate')),
    escalated_at timestamptz,
    state        text        NOT NULL CHECK (state IN ('active', 'expired', 'reverted')),
    ended_at     timestamptz
);
CREATE INDEX killed_jobs_target ON killed_jobs (tenant_id, job_id) WHERE state = 'active';

-- A tool is not an execution: nothing to cancel or terminate, so no mode.
CREATE TABLE disabled_tools (
    command_id   text        PRIMARY KEY REFERENCES processed_commands,
    tenant_id    text        NOT NULL,
    tool         text        NOT NULL,
    target_kind  text        NOT NULL,
    reason       text        NOT NULL,
    disabled_at  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    state        text        NOT NULL CHECK (state IN ('active', 'expired', 'reverted')),
    ended_at     timestamptz
);
CREATE INDEX disabled_tools_target ON disabled_tools (tenant_id, tool) WHERE state = 'active';

-- Heartbeats the workflow engine (or the host running agents) upserts while a target
-- still runs: a halted or killed target seen after halted_at + grace is escalated
-- from cancel to terminate.
CREATE TABLE target_activity (
    tenant_id    text        NOT NULL,
    target_kind  text        NOT NULL,
    target_id    text        NOT NULL,
    last_seen_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, target_kind, target_id)
);

-- Commands refused: forged, unsigned, malformed. Never the record itself. One row per
-- Kafka message, so a replay of the topic does not count a rejection twice.
CREATE TABLE rejected_commands (
    id               bigserial   PRIMARY KEY,
    command_id       text,        -- NULL when the message had none that looked like one
    tenant_id        text,
    reason           text        NOT NULL,
    at               timestamptz NOT NULL DEFAULT now(),
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    UNIQUE (source_topic, source_partition, source_offset)
);

-- Operator reverts (`--revert ID --by WHO --why TEXT`); one per command.
CREATE TABLE reverts (
    command_id  text        PRIMARY KEY REFERENCES processed_commands,
    reverted_by text        NOT NULL,
    why         text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    -- false when the command had already expired or changed nothing.
    undid       boolean     NOT NULL
);

-- Audit trail: every applied, escalated, expired and reverted command.
CREATE TABLE killswitch_history (
    id         bigserial   PRIMARY KEY,
    command_id text        NOT NULL,
    event      text        NOT NULL CHECK (event IN ('applied', 'escalated', 'expired', 'reverted')),
    detail     text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX killswitch_history_command ON killswitch_history (command_id);
