/**
 * Structured JSON logs. Every line from a workflow or activity carries the workflow id, and the
 * step where there is one (the step runner adds it); the Temporal runtime's own logs go through
 * the same logger.
 */
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';
import pino from 'pino';

export type AppLogger = pino.Logger;

export function createLogger(opts: { level?: string; destination?: 1 | 2; name?: string } = {}): AppLogger {
  return pino(
    {
      name: opts.name ?? 'switchyard',
      level: opts.level ?? process.env.SWITCHYARD_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Belt and braces: no secret is ever put in a log call, and these keys are masked anyway.
      redact: {
        paths: ['password', '*.password', 'privateKey', '*.privateKey', 'secretAccessKey', '*.secretAccessKey', 'connectionString'],
        censor: '[redacted]',
      },
    },
    pino.destination({ fd: opts.destination ?? 1, sync: true }),
  );
}

const LEVELS: Record<LogLevel, pino.Level> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/** Adapts pino to the Temporal SDK's Logger so workflow and activity logs come out as our JSON. */
export class TemporalPinoLogger implements Logger {
  constructor(private readonly base: AppLogger) {}
  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    this.base[LEVELS[level] ?? 'info']({ ...meta }, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}
