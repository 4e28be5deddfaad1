/**
 * The one place where a command line sent over SSH is built. Every argument is quoted for a POSIX
 * shell; config and user input are never concatenated into a command any other way.
 */

/** POSIX single-quote quoting: the result is read back by sh as exactly `arg`. */
export function quote(arg: string): string {
  if (typeof arg !== 'string') throw new TypeError(`shell argument must be a string, got ${typeof arg}`);
  if (arg.includes('\0')) throw new TypeError('shell argument contains a NUL byte, which no command line can carry');
  // Safe characters need no quoting; keeps logged commands readable ("systemctl start app").
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A command line from an argument vector, every element quoted. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new TypeError('empty command');
  return argv.map(quote).join(' ');
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Replace "{name}" placeholders inside each element with `vars[name]`. Runs before quoting, so a
 * substituted value stays inside its one argument whatever it contains. Braces that do not name a
 * variable (awk's "{print}", a typo) are left as they are: config may legitimately contain them.
 */
export function substitute(argv: readonly string[], vars: Record<string, string>): string[] {
  return argv.map((el) => el.replace(PLACEHOLDER, (whole, name: string) => (Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : whole)));
}
