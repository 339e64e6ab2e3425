// pgfence schema: one release wakes one waiter (the head of the key's queue) instead of every
// waiting PgFence of the key.
// The SQL is in sql/0009-wake-head.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0009-wake-head.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0009-wake-head.down.sql', await currentSchema(pgm)));
}
