// pgfence schema: a leaseAll that has to wait takes a place in the queue of every key of its
// set, so that shared callers that come after an exclusive set queue behind it (guarantee 11).
// The SQL is in sql/0011-set-queue.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0011-set-queue.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0011-set-queue.down.sql', await currentSchema(pgm)));
}
