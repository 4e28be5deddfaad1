/**
 * The pure parts of point-in-time recovery: WAL segment names and numbers, which segments a
 * replay needs and which retention may delete, the recovery settings a drill and a restore write,
 * and readiness's archive check (unknown fails a set maximum).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSegmentName, segmentsBefore, segnoOfLsn } from '../../src/contract/wal-archive';
import { walNeeded, pitrAutoConf } from '../../src/activities/backup/pg-restore-pitr';
import { drillPostgresqlConf, pgTimestamp, pitrRestoreCommand } from '../../src/activities/backup/pg-drill-config';

describe('WAL segments', () => {
  it('names and numbers', () => {
    assert.deepEqual(parseSegmentName('000000020000000A000000FF'), { timeline: 2, segno: 0xa * 0x100 + 0xff });
    assert.deepEqual(parseSegmentName('000000010000000000000003.partial'), { timeline: 1, segno: 3 });
    assert.equal(parseSegmentName('00000002.history'), null);
    assert.equal(parseSegmentName('base.tar.gz'), null);
    assert.equal(segnoOfLsn('0/3000028'), 3);
    assert.equal(segnoOfLsn('A/FF000000'), 0xa * 0x100 + 0xff);
  });

  it('retention deletes segments below the oldest kept backup on any timeline, never history files', () => {
    const names = [
      '000000010000000000000001',
      '000000010000000000000002',
      '000000010000000000000003.partial',
      '000000020000000000000002',
      '000000020000000000000003',
      '00000002.history',
    ];
    assert.deepEqual(segmentsBefore(names, { lsn: '0/3000028' }), ['000000010000000000000001', '000000010000000000000002', '000000020000000000000002']);
    assert.deepEqual(segmentsBefore(names, { lsn: '0/1000000' }), []);
  });

  it('a replay takes history files and the segments from the backup start on, a .partial under its plain name unless the finished one exists', () => {
    const names = [
      '000000010000000000000002',
      '000000010000000000000003.partial',
      '000000020000000000000003',
      '000000020000000000000004.partial',
      '00000002.history',
    ];
    assert.deepEqual(walNeeded(names, '0/3000028'), [
      { from: '000000010000000000000003.partial', as: '000000010000000000000003' },
      { from: '00000002.history', as: '00000002.history' },
      { from: '000000020000000000000003', as: '000000020000000000000003' },
      { from: '000000020000000000000004.partial', as: '000000020000000000000004' },
    ]);
    assert.deepEqual(
      walNeeded(['000000010000000000000003', '000000010000000000000003.partial'], '0/3000000').map((w) => w.from),
      ['000000010000000000000003'],
    );
  });
});

describe('recovery settings', () => {
  it('a target time in the form recovery_target_time takes', () => {
    assert.equal(pgTimestamp('2026-12-04T02:33:43.368Z'), '2026-12-04 02:33:43.368+00');
    assert.equal(pgTimestamp('2026-12-04T03:33:43+01:00'), '2026-12-04 02:33:43.000+00');
  });

  it("a drill's scratch copy replays the archive (finished segment, else the one being written) to the target and promotes", () => {
    assert.equal(pitrRestoreCommand('/srv/b/demo/.wal'), 'cp "/srv/b/demo/.wal/%f" "%p" 2>/dev/null || cp "/srv/b/demo/.wal/%f.partial" "%p" 2>/dev/null');
    const conf = drillPostgresqlConf({
      cluster: 'demo',
      backupId: 'b1',
      dataDir: '/s/data',
      socketDir: '/s',
      port: 55432,
      recovery: { walDir: '/srv/b/demo/.wal', targetTime: '2026-12-04T02:33:43.368Z' },
    });
    assert.match(conf, /^recovery_target_time = '2026-12-04 02:33:43\.368\+00'$/m);
    assert.match(conf, /^recovery_target_action = 'promote'$/m);
    assert.match(conf, /^recovery_target_timeline = 'latest'$/m);
    assert.match(conf, /^restore_command = 'cp "\/srv\/b\/demo\/\.wal\/%f"/m);
    assert.doesNotMatch(conf, /^restore_command = ''$/m);
    const plain = drillPostgresqlConf({ cluster: 'demo', backupId: 'b1', dataDir: '/s/data', socketDir: '/s', port: 55432 });
    assert.match(plain, /^restore_command = ''$/m);
    assert.doesNotMatch(plain, /recovery_target/);
  });

  it("a restore's settings name the data directory's staged WAL and are marked for their reset", () => {
    const c = pitrAutoConf('/var/lib/pg/data', '2026-12-04T02:33:43.368Z');
    assert.match(c, /^# switchyard point-in-time restore to 2026-12-04T02:33:43\.368Z/);
    assert.match(c, /^restore_command = 'cp "\/var\/lib\/pg\/data\/switchyard-pitr-wal\/%f" "%p"'$/m);
    assert.match(c, /^recovery_target_time = '2026-12-04 02:33:43\.368\+00'$/m);
  });
});
