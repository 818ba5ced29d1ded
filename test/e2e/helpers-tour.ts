/**
 * Reading a tour page (docs/tour.md) as a test script: the commands of its fenced `sh` blocks, in
 * order, each with the text its output is expected to contain. Conventions, kept simple enough
 * for a human reader of the page:
 * - only blocks fenced as ```sh run (indented or other blocks are prose);
 * - blank lines and `#` comment lines are skipped; a line ending in `\` continues on the next;
 * - `# expect: TEXT` at the end of a command's line (or alone on the line after it) means the
 *   command's output (stdout and stderr) contains TEXT. Where TEXT starts or ends with a letter
 *   or digit, that end must be a word boundary: `Ready` does not match `NotReady`.
 */

export interface TourStep {
  /** The command as written in the page (one line, continuations joined). */
  command: string;
  /** What its output contains, if the page says. */
  expect: string[];
  /** 1-based line of the command in the page, for messages. */
  line: number;
}

const fence = /^\s*```(\S*)\s*$/;
const expectComment = /(?:^|\s)#\s*expect:\s*(.+?)\s*$/;

/** The steps of every ```sh block of a Markdown page, in order. */
export function tourSteps(markdown: string): TourStep[] {
  const steps: TourStep[] = [];
  let inBlock: string | undefined;
  let pending: { text: string; line: number } | undefined;
  const lines = markdown.split('\n');
  lines.forEach((raw, index) => {
    const open = fence.exec(raw);
    if (open) {
      if (inBlock === undefined) inBlock = open[1] ?? '';
      else {
        if (pending) throw new Error(`line ${pending.line}: a command ends with "\\" at the end of its block`);
        inBlock = undefined;
      }
      return;
    }
    if (inBlock !== 'sh') return;
    if (pending) {
      pending.text += ` ${raw.trim()}`;
    } else {
      const trimmed = raw.trim();
      if (trimmed === '') return;
      if (trimmed.startsWith('#')) {
        const alone = expectComment.exec(trimmed);
        if (alone) {
          const previous = steps.at(-1);
          if (!previous) throw new Error(`line ${index + 1}: "# expect:" before any command`);
          previous.expect.push(alone[1]!);
        }
        return;
      }
      pending = { text: trimmed, line: index + 1 };
    }
    if (pending.text.endsWith('\\')) {
      pending.text = pending.text.slice(0, -1).trimEnd();
      return;
    }
    const expected = expectComment.exec(pending.text);
    steps.push({ command: expected ? pending.text.slice(0, expected.index).trimEnd() : pending.text, expect: expected ? [expected[1]!] : [], line: pending.line });
    pending = undefined;
  });
  if (inBlock !== undefined) throw new Error('a fenced block is not closed');
  return steps;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** True when `output` contains `expected`, on word boundaries at its alphanumeric ends. */
export function outputMatches(output: string, expected: string): boolean {
  const start = /^\w/.test(expected) ? '\\b' : '';
  const end = /\w$/.test(expected) ? '\\b' : '';
  return new RegExp(`${start}${escape(expected)}${end}`).test(output);
}
