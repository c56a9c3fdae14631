// A hostile worker for supervisor tests: what an attacker who took over the
// unprivileged worker could send. On start it writes a forged supervisor
// record and a line of control characters to stdout, sends messages that do
// not fit the protocol, a fatal message with control characters, then a
// good `ready`. To each request it first
// answers with a bad response, then with a good one whose result carries
// control characters. SIGTERM ends it.

const FORGED_RECORD = '{"level":60,"time":1,"pid":1,"hostname":"h","role":"supervisor","msg":"stopping (forged)"}';
const CONTROL_LINE = 'evil\x1b[31m red \x9b31m csi \x9d0;pwned\x07 osc \x7f del';

function send(m: unknown): void {
  if (process.connected) process.send!(m);
}

process.on('SIGTERM', () => process.exit(0));
process.on('message', (raw) => {
  const m = raw as { type: string; id?: number };
  if (m.type === 'start') {
    process.stdout.write(`${FORGED_RECORD}\n${CONTROL_LINE}\n`);
    send({ type: 'ready', exports: { join: 'not a list' } });
    send({ type: 'ready', exports: ['e1.1', 7] });
    send({ type: 'fatal' });
    send({ type: 'no-such-type' });
    send({ type: 'response', id: 'x', ok: true });
    send({ type: 'fatal', message: 'no\x1b]0;owned\x07 \x9b2J interface\nsecond line' });
    send({ type: 'ready', exports: ['e1.1'], extra: 'dropped' });
  } else if (m.type === 'request') {
    send({ type: 'response', id: m.id, ok: 'yes', result: 'bad' });
    send({ type: 'response', id: m.id, ok: true, result: { config: 'A\x1b[31mB\x9b31mC' } });
  }
});
setInterval(() => send({ type: 'heartbeat' }), 1000);
