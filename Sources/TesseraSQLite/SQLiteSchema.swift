import GRDB
import TesseraIdentity
import TesseraModel
import TesseraStore

extension SQLiteStore {
  static var migrator: DatabaseMigrator {
    var m = DatabaseMigrator()
    m.registerMigration("v1") { db in
      try db.execute(
        sql: """
          CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL);
          INSERT INTO meta (key, value) VALUES ('schema_version', 1);

          CREATE TABLE profiles (
            id INTEGER PRIMARY KEY NOT NULL,
            created_at INTEGER NOT NULL,
            merged_into INTEGER CHECK (merged_into IS NULL OR merged_into <> id)
          );
          CREATE INDEX profiles_merged_into ON profiles (merged_into) WHERE merged_into IS NOT NULL;

          -- A rowid table with a separate primary-key index: bodies are too large for WITHOUT ROWID, and
          -- appends to the rowid b-tree are cheap.
          CREATE TABLE events (
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT,
            timestamp INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            profile_id INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (source, id)
          );
          CREATE INDEX events_profile ON events (profile_id, timestamp);

          CREATE TABLE identifiers (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            PRIMARY KEY (kind, value, profile_id)
          ) WITHOUT ROWID;
          CREATE INDEX identifiers_profile ON identifiers (profile_id);

          CREATE TABLE traits (
            profile_id INTEGER NOT NULL,
            trait TEXT NOT NULL,
            value TEXT NOT NULL,
            source TEXT NOT NULL,
            event_id TEXT NOT NULL,
            timestamp INTEGER NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (profile_id, trait)
          ) WITHOUT ROWID;

          CREATE TABLE merges (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            survivor INTEGER NOT NULL,
            absorbed INTEGER NOT NULL,
            rule TEXT NOT NULL,
            evidence TEXT NOT NULL,
            event_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            score REAL -- NULL stands for NaN, which SQLite cannot store
          );
          CREATE INDEX merges_survivor ON merges (survivor);
          CREATE INDEX merges_absorbed ON merges (absorbed);

          CREATE TABLE conflicts (
            id INTEGER PRIMARY KEY,
            kept INTEGER NOT NULL,
            other INTEGER,
            kind TEXT NOT NULL,
            reason TEXT NOT NULL,
            identifiers TEXT NOT NULL,
            event_id TEXT NOT NULL,
            at INTEGER NOT NULL
          );
          CREATE INDEX conflicts_kept ON conflicts (kept);
          CREATE INDEX conflicts_other ON conflicts (other) WHERE other IS NOT NULL;

          CREATE TABLE rejected (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            line INTEGER,
            record TEXT NOT NULL,
            reason TEXT NOT NULL,
            at INTEGER NOT NULL
          );
          """)
    }
    // v2: a record rejected again on a later run over the same files is kept once.
    m.registerMigration("v2") { db in
      try db.execute(
        sql: """
          DELETE FROM rejected WHERE id NOT IN (SELECT min(id) FROM rejected GROUP BY source, reason, record);
          CREATE UNIQUE INDEX rejected_once ON rejected (source, reason, record);
          UPDATE meta SET value = 2 WHERE key = 'schema_version';
          """)
    }
    // v3: computed-trait states, segment memberships and the log of segment changes.
    m.registerMigration("v3") { db in
      try db.execute(
        sql: """
          CREATE TABLE computed_traits (
            profile_id INTEGER NOT NULL,
            trait TEXT NOT NULL,
            value TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (profile_id, trait)
          ) WITHOUT ROWID;

          CREATE TABLE memberships (
            segment TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            since INTEGER NOT NULL,
            PRIMARY KEY (segment, profile_id)
          ) WITHOUT ROWID;
          CREATE INDEX memberships_profile ON memberships (profile_id);

          CREATE TABLE segment_changes (
            id INTEGER PRIMARY KEY,
            segment TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            entered INTEGER NOT NULL,
            at INTEGER NOT NULL,
            "values" TEXT NOT NULL,
            merged_into INTEGER
          );
          CREATE INDEX segment_changes_segment ON segment_changes (segment, id);
          UPDATE meta SET value = 3 WHERE key = 'schema_version';
          """)
    }
    // v4: the log of probabilistic decisions (joins, candidate links for review, refusals).
    m.registerMigration("v4") { db in
      try db.execute(
        sql: """
          CREATE TABLE match_links (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            candidate_id INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            probability REAL NOT NULL,
            weight REAL NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            at INTEGER NOT NULL
          );
          CREATE INDEX match_links_status ON match_links (status, id);
          UPDATE meta SET value = 4 WHERE key = 'schema_version';
          """)
    }
    // v5: identifier pairs people separated (tessera unmerge).
    m.registerMigration("v5") { db in
      try db.execute(
        sql: """
          CREATE TABLE separations (
            kind_a TEXT NOT NULL, value_a TEXT NOT NULL, kind_b TEXT NOT NULL, value_b TEXT NOT NULL,
            PRIMARY KEY (kind_a, value_a, kind_b, value_b)
          ) WITHOUT ROWID;
          UPDATE meta SET value = 5 WHERE key = 'schema_version';
          """)
    }
    // v6: hashes of deleted people's identifiers; events carrying them are dropped at the door.
    m.registerMigration("v6") { db in
      try db.execute(
        sql: """
          CREATE TABLE suppressions (hash TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
          UPDATE meta SET value = 6 WHERE key = 'schema_version';
          """)
    }
    // v7: the outbox of changes for destinations, and their delivery batches (dead letters among them).
    m.registerMigration("v7") { db in
      try db.execute(
        sql: """
          CREATE TABLE delivery_batches (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            destination TEXT NOT NULL,
            key TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            items INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            lease_until INTEGER,
            last_status INTEGER,
            last_error TEXT NOT NULL,
            finished_at INTEGER
          );
          CREATE INDEX delivery_batches_due ON delivery_batches (destination, status, next_attempt_at);

          CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            destination TEXT NOT NULL,
            op TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            payload TEXT NOT NULL,
            at INTEGER NOT NULL,
            batch_id INTEGER REFERENCES delivery_batches (id)
          );
          CREATE INDEX outbox_waiting ON outbox (destination, id) WHERE batch_id IS NULL;
          CREATE INDEX outbox_batch ON outbox (batch_id) WHERE batch_id IS NOT NULL;
          CREATE INDEX outbox_profile ON outbox (profile_id);

          -- Batches that gave up, with the last status and response: what `tessera deliveries` lists.
          CREATE VIEW dead_letters AS
            SELECT id, destination, key, attempts, items, last_status, last_error, created_at, finished_at
            FROM delivery_batches WHERE status = 'dead';
          UPDATE meta SET value = 7 WHERE key = 'schema_version';
          """)
    }
    // v8: the journal (events a process that is not the writer accepted, waiting to be resolved) and the
    // epoch of the derived state (see `Store.epoch()`).
    m.registerMigration("v8") { db in
      try db.execute(
        sql: """
          CREATE TABLE journal (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT,
            timestamp INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            body TEXT NOT NULL,
            UNIQUE (source, id)
          );
          INSERT INTO meta (key, value) VALUES ('epoch', 0);
          UPDATE meta SET value = 8 WHERE key = 'schema_version';
          """)
    }
    // v9: the journal moved to its own file (`<path>-intake`, see `moveJournal`); the writer's progress
    // through it is a cursor here, advanced in the transaction that stores the resolved events.
    m.registerMigration("v9") { db in
      try db.execute(
        sql: """
          DROP TABLE IF EXISTS journal;
          INSERT INTO meta (key, value) VALUES ('journal_done', 0);
          UPDATE meta SET value = 9 WHERE key = 'schema_version';
          """)
    }
    // v10: the event log keeps each event's record as received, with its identifiers apart (`EventLogFormat`;
    // earlier events keep their mapped bodies, format 0). The primary key on (source, id) and the index on
    // (profile_id, timestamp) became two tables the writer fills in their own key order once per transaction:
    // `event_keys` (a stable hash of source and id, `EventKey.logKey`) and `profile_events`.
    m.registerMigration("v10") { db in
      db.add(function: Self.logKeyFunction)
      // A file made by hand with only some of the tables (tests of earlier migrations) has no log to move.
      if try !db.tableExists("events") {
        try db.execute(
          sql: """
            CREATE TABLE events (source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, name TEXT,
              timestamp INTEGER NOT NULL, received_at INTEGER NOT NULL, profile_id INTEGER NOT NULL, body TEXT NOT NULL)
            """)
      }
      try db.execute(
        sql: """
          CREATE TABLE events_v10 (
            seq INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT,
            timestamp INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            profile_id INTEGER NOT NULL,
            identifiers TEXT NOT NULL,
            format INTEGER NOT NULL,
            body BLOB NOT NULL
          );
          INSERT INTO events_v10
            (seq, source, id, type, name, timestamp, received_at, profile_id, identifiers, format, body)
          SELECT rowid, source, id, type, name, timestamp, received_at, profile_id,
            coalesce(json_extract(body, '$.i'), '[]'), 0, CAST(body AS BLOB)
          FROM events ORDER BY rowid;
          DROP TABLE events;
          ALTER TABLE events_v10 RENAME TO events;
          CREATE TABLE event_keys (
            key INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (key, seq)
          ) WITHOUT ROWID;
          INSERT INTO event_keys (key, seq) SELECT tessera_log_key(source, id), seq FROM events ORDER BY 1, 2;
          CREATE TABLE profile_events (
            profile_id INTEGER NOT NULL,
            timestamp INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (profile_id, timestamp, seq)
          ) WITHOUT ROWID;
          INSERT INTO profile_events (profile_id, timestamp, seq)
          SELECT profile_id, timestamp, seq FROM events ORDER BY 1, 2, 3;
          -- The events up to this seq are in event_keys and profile_events; a bulk writer appends past it and
          -- indexes the rest when it is done (`indexTail`).
          INSERT INTO meta (key, value) VALUES ('log_indexed', coalesce((SELECT max(seq) FROM events), 0));
          UPDATE meta SET value = 10 WHERE key = 'schema_version';
          """)
    }
    // v11: how far each table source has read (`CommitBatch.sourceCursors`), written with its events.
    m.registerMigration("v11") { db in
      try db.execute(
        sql: """
          CREATE TABLE source_cursors (source TEXT PRIMARY KEY, value TEXT NOT NULL);
          UPDATE meta SET value = 11 WHERE key = 'schema_version';
          """)
    }
    // v12: each profile's recent device-signal sightings (`CommitBatch.sightings`), written with the events
    // that produced them, so a restarted writer decides as if it had never stopped; pruned by `expires`.
    m.registerMigration("v12") { db in
      try db.execute(
        sql: """
          CREATE TABLE sightings (
            profile_id INTEGER PRIMARY KEY NOT NULL,
            expires INTEGER NOT NULL,
            sightings TEXT NOT NULL
          );
          CREATE INDEX sightings_expires ON sightings (expires);
          UPDATE meta SET value = 12 WHERE key = 'schema_version';
          """)
    }
    // v13: the console's pages (issue 20): the review queue by probability and the threshold counts per rule,
    // each from an index instead of every link.
    m.registerMigration("v13") { db in
      try db.execute(
        sql: """
          CREATE INDEX match_links_by_probability ON match_links (status, probability, id);
          CREATE INDEX match_links_rule_probability ON match_links (rule, probability);
          UPDATE meta SET value = 13 WHERE key = 'schema_version';
          """)
    }
    // v14: no table changes. A trait row's summary may leave out its winner (the row's value, source, event id
    // and timestamp are the winner: `TraitState.encodedWithoutWinner`). A build before v14 could not read such
    // a summary and would restore the profile without the trait's history; with the version it refuses the file.
    m.registerMigration("v14") { db in
      try db.execute(sql: "UPDATE meta SET value = 14 WHERE key = 'schema_version'")
    }
    // v15: logged records compressed with zstd and a dictionary trained from the store's own records
    // (`RecordCodec`; format `compressedRecordFormat`, which a build before v15 cannot read).
    m.registerMigration("v15") { db in
      try db.execute(
        sql: """
          CREATE TABLE record_dictionaries (
            id INTEGER PRIMARY KEY NOT NULL,
            dictionary BLOB NOT NULL,
            created_at INTEGER NOT NULL
          );
          UPDATE meta SET value = 15 WHERE key = 'schema_version';
          """)
    }
    // A later migration ends with `UPDATE meta SET value = N WHERE key = 'schema_version'`.
    return m
  }

  /// `tessera_log_key(source, id)`: `EventKey.logKey` in SQL, for the v10 migration.
  static let logKeyFunction = DatabaseFunction("tessera_log_key", argumentCount: 2, pure: true) { values in
    guard let source = String.fromDatabaseValue(values[0]), let id = String.fromDatabaseValue(values[1]) else {
      return nil
    }
    return EventKey(source: source, id: id).logKey
  }
}
