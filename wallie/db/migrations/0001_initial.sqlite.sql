-- Initial schema: users, contacts, conversations, messages, reminders,
-- scores, outbox, run history, usage, sync state and the audit log.
CREATE TABLE "user" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "email" VARCHAR(320) NOT NULL, "name" VARCHAR(200) NOT NULL, "time_zone" VARCHAR(64) NOT NULL, "locale" VARCHAR(35) NOT NULL, "plan" VARCHAR(32) NOT NULL, "paid_work_paused_until" DATETIME, "pause_reason" VARCHAR(300) NOT NULL, "created_at" DATETIME NOT NULL);

CREATE UNIQUE INDEX "user_email" ON "user" ("email");

CREATE TABLE "contact" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "name" VARCHAR(300) NOT NULL, "company" VARCHAR(300) NOT NULL, "phone" VARCHAR(32), "email" VARCHAR(320), "is_self" INTEGER NOT NULL, "created_at" DATETIME NOT NULL, "updated_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "contact_user_id" ON "contact" ("user_id");

CREATE INDEX "contact_phone" ON "contact" ("phone");

CREATE INDEX "contact_email" ON "contact" ("email");

CREATE TABLE "contact_handle" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "contact_id" INTEGER NOT NULL, "kind" VARCHAR(16) NOT NULL, "value" VARCHAR(320) NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY ("contact_id") REFERENCES "contact" ("id") ON DELETE CASCADE);

CREATE INDEX "contact_handle_user_id" ON "contact_handle" ("user_id");

CREATE INDEX "contact_handle_contact_id" ON "contact_handle" ("contact_id");

CREATE UNIQUE INDEX "contact_handle_user_id_kind_value" ON "contact_handle" ("user_id", "kind", "value");

CREATE TABLE "import" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "kind" VARCHAR(32) NOT NULL, "source_name" VARCHAR(500) NOT NULL, "sha256" VARCHAR(64) NOT NULL, "status" VARCHAR(16) NOT NULL, "size_bytes" INTEGER NOT NULL, "processed_bytes" INTEGER NOT NULL, "stats" TEXT NOT NULL, "error" TEXT NOT NULL, "created_at" DATETIME NOT NULL, "finished_at" DATETIME, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "import_user_id" ON "import" ("user_id");

CREATE TABLE "conversation" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "channel" VARCHAR(16) NOT NULL, "external_id" VARCHAR(500) NOT NULL, "title" VARCHAR(500) NOT NULL, "contact_id" INTEGER, "is_group" INTEGER NOT NULL, "created_at" DATETIME NOT NULL, "last_message_at" DATETIME, "analyzed_until" DATETIME, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY ("contact_id") REFERENCES "contact" ("id") ON DELETE SET NULL);

CREATE INDEX "conversation_user_id" ON "conversation" ("user_id");

CREATE INDEX "conversation_contact_id" ON "conversation" ("contact_id");

CREATE UNIQUE INDEX "conversation_user_id_channel_external_id" ON "conversation" ("user_id", "channel", "external_id");

CREATE TABLE "conversation_participant" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "conversation_id" INTEGER NOT NULL, "contact_id" INTEGER NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY ("conversation_id") REFERENCES "conversation" ("id") ON DELETE CASCADE, FOREIGN KEY ("contact_id") REFERENCES "contact" ("id") ON DELETE CASCADE);

CREATE INDEX "conversation_participant_user_id" ON "conversation_participant" ("user_id");

CREATE INDEX "conversation_participant_conversation_id" ON "conversation_participant" ("conversation_id");

CREATE INDEX "conversation_participant_contact_id" ON "conversation_participant" ("contact_id");

CREATE UNIQUE INDEX "conversation_participant_conversation_id_contact_id" ON "conversation_participant" ("conversation_id", "contact_id");

CREATE TABLE "message" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "channel" VARCHAR(16) NOT NULL, "external_id" VARCHAR(500) NOT NULL, "conversation_id" INTEGER NOT NULL, "sender_id" INTEGER, "source_import_id" INTEGER, "direction" VARCHAR(8) NOT NULL, "sent_at" DATETIME NOT NULL, "subject" VARCHAR(1000) NOT NULL, "body" TEXT NOT NULL, "is_deleted" INTEGER NOT NULL, "is_edited" INTEGER NOT NULL, "labels" TEXT NOT NULL, "analyzed_at" DATETIME, "created_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY ("conversation_id") REFERENCES "conversation" ("id") ON DELETE CASCADE, FOREIGN KEY ("sender_id") REFERENCES "contact" ("id") ON DELETE SET NULL, FOREIGN KEY ("source_import_id") REFERENCES "import" ("id") ON DELETE SET NULL);

CREATE INDEX "message_user_id" ON "message" ("user_id");

CREATE INDEX "message_conversation_id" ON "message" ("conversation_id");

CREATE INDEX "message_sender_id" ON "message" ("sender_id");

CREATE INDEX "message_source_import_id" ON "message" ("source_import_id");

CREATE INDEX "message_sent_at" ON "message" ("sent_at");

CREATE UNIQUE INDEX "message_user_id_channel_external_id" ON "message" ("user_id", "channel", "external_id");

CREATE INDEX "message_conversation_id_sent_at" ON "message" ("conversation_id", "sent_at");

CREATE TABLE "attachment" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "message_id" INTEGER NOT NULL, "kind" VARCHAR(16) NOT NULL, "file_name" VARCHAR(500) NOT NULL, "content_type" VARCHAR(200) NOT NULL, "size_bytes" INTEGER NOT NULL, "path" VARCHAR(1000) NOT NULL, "transcription_status" VARCHAR(16) NOT NULL, "transcription_error" TEXT NOT NULL, "transcript" TEXT NOT NULL, "transcript_engine" VARCHAR(32) NOT NULL, "transcript_language" VARCHAR(16) NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY ("message_id") REFERENCES "message" ("id") ON DELETE CASCADE);

CREATE INDEX "attachment_user_id" ON "attachment" ("user_id");

CREATE INDEX "attachment_message_id" ON "attachment" ("message_id");

CREATE TABLE "knowledge_document" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "source_import_id" INTEGER, "title" VARCHAR(500) NOT NULL, "content_type" VARCHAR(200) NOT NULL, "text" TEXT NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY ("source_import_id") REFERENCES "import" ("id") ON DELETE CASCADE);

CREATE INDEX "knowledge_document_user_id" ON "knowledge_document" ("user_id");

CREATE INDEX "knowledge_document_source_import_id" ON "knowledge_document" ("source_import_id");

CREATE TABLE "reminder" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "key" VARCHAR(200) NOT NULL, "contact_id" INTEGER, "conversation_id" INTEGER, "source_message_id" INTEGER, "text" TEXT NOT NULL, "promised_by" VARCHAR(8) NOT NULL, "due_at" DATETIME NOT NULL, "status" VARCHAR(16) NOT NULL, "snoozed_until" DATETIME, "notified_at" DATETIME, "created_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY ("contact_id") REFERENCES "contact" ("id") ON DELETE CASCADE, FOREIGN KEY ("conversation_id") REFERENCES "conversation" ("id") ON DELETE CASCADE, FOREIGN KEY ("source_message_id") REFERENCES "message" ("id") ON DELETE CASCADE);

CREATE INDEX "reminder_user_id" ON "reminder" ("user_id");

CREATE UNIQUE INDEX "reminder_key" ON "reminder" ("key");

CREATE INDEX "reminder_contact_id" ON "reminder" ("contact_id");

CREATE INDEX "reminder_conversation_id" ON "reminder" ("conversation_id");

CREATE INDEX "reminder_source_message_id" ON "reminder" ("source_message_id");

CREATE INDEX "reminder_due_at" ON "reminder" ("due_at");

CREATE TABLE "entity" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "message_id" INTEGER NOT NULL, "contact_id" INTEGER, "kind" VARCHAR(32) NOT NULL, "value" TEXT NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY ("message_id") REFERENCES "message" ("id") ON DELETE CASCADE, FOREIGN KEY ("contact_id") REFERENCES "contact" ("id") ON DELETE CASCADE);

CREATE INDEX "entity_user_id" ON "entity" ("user_id");

CREATE INDEX "entity_message_id" ON "entity" ("message_id");

CREATE INDEX "entity_contact_id" ON "entity" ("contact_id");

CREATE UNIQUE INDEX "entity_message_id_kind_value" ON "entity" ("message_id", "kind", "value");

CREATE TABLE "lead_score" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "contact_id" INTEGER NOT NULL, "conversation_id" INTEGER, "score" INTEGER NOT NULL, "reasons" TEXT NOT NULL, "computed_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY ("contact_id") REFERENCES "contact" ("id") ON DELETE CASCADE, FOREIGN KEY ("conversation_id") REFERENCES "conversation" ("id") ON DELETE CASCADE);

CREATE INDEX "lead_score_user_id" ON "lead_score" ("user_id");

CREATE INDEX "lead_score_contact_id" ON "lead_score" ("contact_id");

CREATE INDEX "lead_score_conversation_id" ON "lead_score" ("conversation_id");

CREATE INDEX "lead_score_computed_at" ON "lead_score" ("computed_at");

CREATE TABLE "outbox_item" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER, "idempotency_key" VARCHAR(300) NOT NULL, "kind" VARCHAR(16) NOT NULL, "recipient" VARCHAR(1000) NOT NULL, "subject" VARCHAR(1000) NOT NULL, "payload" TEXT NOT NULL, "status" VARCHAR(16) NOT NULL, "attempts" INTEGER NOT NULL, "last_error" TEXT NOT NULL, "created_at" DATETIME NOT NULL, "sent_at" DATETIME, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "outbox_item_user_id" ON "outbox_item" ("user_id");

CREATE UNIQUE INDEX "outbox_item_idempotency_key" ON "outbox_item" ("idempotency_key");

CREATE INDEX "outbox_item_status" ON "outbox_item" ("status");

CREATE TABLE "notification" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "kind" VARCHAR(32) NOT NULL, "title" VARCHAR(500) NOT NULL, "body" TEXT NOT NULL, "data" TEXT NOT NULL, "created_at" DATETIME NOT NULL, "read_at" DATETIME, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "notification_user_id" ON "notification" ("user_id");

CREATE TABLE "job_run" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "message_id" VARCHAR(64) NOT NULL, "attempt" INTEGER NOT NULL, "actor" VARCHAR(100) NOT NULL, "queue" VARCHAR(100) NOT NULL, "user_id" INTEGER, "args" TEXT NOT NULL, "kwargs" TEXT NOT NULL, "options" TEXT NOT NULL, "status" VARCHAR(16) NOT NULL, "reason" TEXT NOT NULL, "error_type" VARCHAR(200) NOT NULL, "error" TEXT NOT NULL, "replay_of" VARCHAR(64), "enqueued_at" DATETIME, "started_at" DATETIME, "finished_at" DATETIME, "duration_ms" INTEGER);

CREATE INDEX "job_run_message_id" ON "job_run" ("message_id");

CREATE INDEX "job_run_actor" ON "job_run" ("actor");

CREATE INDEX "job_run_user_id" ON "job_run" ("user_id");

CREATE INDEX "job_run_status" ON "job_run" ("status");

CREATE INDEX "job_run_replay_of" ON "job_run" ("replay_of");

CREATE INDEX "job_run_finished_at" ON "job_run" ("finished_at");

CREATE UNIQUE INDEX "job_run_message_id_attempt" ON "job_run" ("message_id", "attempt");

CREATE TABLE "usage_record" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER, "provider" VARCHAR(32) NOT NULL, "actor" VARCHAR(100) NOT NULL, "operation" VARCHAR(64) NOT NULL, "message_id" VARCHAR(64) NOT NULL, "calls" INTEGER NOT NULL, "tokens_in" INTEGER NOT NULL, "tokens_out" INTEGER NOT NULL, "audio_seconds" INTEGER NOT NULL, "cost_usd" DECIMAL(14, 6) NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "usage_record_user_id" ON "usage_record" ("user_id");

CREATE INDEX "usage_record_created_at" ON "usage_record" ("created_at");

CREATE INDEX "usage_record_user_id_created_at" ON "usage_record" ("user_id", "created_at");

CREATE TABLE "mailbox" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "provider" VARCHAR(16) NOT NULL, "address" VARCHAR(320) NOT NULL, "token" TEXT NOT NULL, "state" VARCHAR(16) NOT NULL, "last_sync_at" DATETIME, "last_error" TEXT NOT NULL, "reconnect_notified_at" DATETIME, "created_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "mailbox_user_id" ON "mailbox" ("user_id");

CREATE INDEX "mailbox_state" ON "mailbox" ("state");

CREATE UNIQUE INDEX "mailbox_user_id_provider_address" ON "mailbox" ("user_id", "provider", "address");

CREATE TABLE "sync_state" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "provider" VARCHAR(32) NOT NULL, "account" VARCHAR(320) NOT NULL, "cursor" TEXT NOT NULL, "status" VARCHAR(32) NOT NULL, "error" TEXT NOT NULL, "last_synced_at" DATETIME, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "sync_state_user_id" ON "sync_state" ("user_id");

CREATE UNIQUE INDEX "sync_state_user_id_provider_account" ON "sync_state" ("user_id", "provider", "account");

CREATE TABLE "limit_override" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER, "plan" VARCHAR(32), "name" VARCHAR(64) NOT NULL, "value" VARCHAR(64) NOT NULL, "updated_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "limit_override_user_id" ON "limit_override" ("user_id");

CREATE UNIQUE INDEX "limit_override_user_id_plan_name" ON "limit_override" ("user_id", "plan", "name");

CREATE TABLE "schedule_tick" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "actor" VARCHAR(100) NOT NULL, "tick_at" DATETIME NOT NULL, "catch_up" INTEGER NOT NULL, "message_id" VARCHAR(64) NOT NULL, "created_at" DATETIME NOT NULL, "sent_at" DATETIME);

CREATE UNIQUE INDEX "schedule_tick_actor_tick_at" ON "schedule_tick" ("actor", "tick_at");

CREATE TABLE "local_run" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" INTEGER NOT NULL, "job" VARCHAR(64) NOT NULL, "period" VARCHAR(16) NOT NULL, "claim" VARCHAR(32) NOT NULL, "time_zone" VARCHAR(64) NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "local_run_user_id" ON "local_run" ("user_id");

CREATE UNIQUE INDEX "local_run_user_id_job_period" ON "local_run" ("user_id", "job", "period");

CREATE TABLE "deletion_request" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "scope" VARCHAR(16) NOT NULL, "user_id" INTEGER NOT NULL, "target_id" INTEGER NOT NULL, "reference" VARCHAR(200) NOT NULL, "requested_by" VARCHAR(200) NOT NULL, "notify_to" VARCHAR(320) NOT NULL, "status" VARCHAR(16) NOT NULL, "plan" TEXT NOT NULL, "counts" TEXT NOT NULL, "error" TEXT NOT NULL, "created_at" DATETIME NOT NULL, "started_at" DATETIME, "finished_at" DATETIME);

CREATE INDEX "deletion_request_user_id" ON "deletion_request" ("user_id");

CREATE INDEX "deletion_request_status" ON "deletion_request" ("status");

CREATE TABLE "backfill" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "actor" VARCHAR(100) NOT NULL, "user_id" INTEGER, "filters" TEXT NOT NULL, "target_kind" VARCHAR(32) NOT NULL, "total" INTEGER NOT NULL, "sent" INTEGER NOT NULL, "cursor" TEXT NOT NULL, "status" VARCHAR(16) NOT NULL, "rate_per_s" REAL, "requested_by" VARCHAR(200) NOT NULL, "created_at" DATETIME NOT NULL, "updated_at" DATETIME NOT NULL, "finished_at" DATETIME, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);

CREATE INDEX "backfill_user_id" ON "backfill" ("user_id");

CREATE INDEX "backfill_status" ON "backfill" ("status");

CREATE TABLE "audit_log" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "action" VARCHAR(64) NOT NULL, "operator" VARCHAR(200) NOT NULL, "user_id" INTEGER, "target" VARCHAR(200) NOT NULL, "details" TEXT NOT NULL, "created_at" DATETIME NOT NULL);

CREATE INDEX "audit_log_action" ON "audit_log" ("action");

CREATE INDEX "audit_log_user_id" ON "audit_log" ("user_id");
