// Frames of `--watch` output. On a terminal a frame replaces the last one in place (cursor
// home, each line cleared to its end, the rest of the screen cleared), cut to the window's
// height so that it never scrolls; the cursor is hidden meanwhile and shown again by end().
// Anywhere else (a pipe, a file) frames follow each other, one blank line apart.

const HOME = '\x1b[H';
const CLEAR_LINE = '\x1b[K';
const CLEAR_BELOW = '\x1b[J';
const CLEAR_SCREEN = '\x1b[2J';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';

/** @internal */
export class Screen {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #frames = 0;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  frame(text: string): void {
    const first = this.#frames === 0;
    this.#frames += 1;
    if (!this.#tty) {
      this.#out.write(first ? text : `\n${text}`);
      return;
    }
    let lines = text.replace(/\n$/u, '').split('\n');
    const rows = this.#out.rows;
    if (rows > 1 && lines.length > rows - 1) {
      const cut = lines.length - (rows - 2);
      lines = [...lines.slice(0, rows - 2), `… ${cut} more lines`];
    }
    const body = lines.map((line) => line + CLEAR_LINE).join('\n');
    this.#out.write(`${first ? HIDE_CURSOR + CLEAR_SCREEN : ''}${HOME}${body}\n${CLEAR_BELOW}`);
  }

  /** Shows the cursor again; the last frame stays on the screen. */
  end(): void {
    if (this.#tty && this.#frames > 0) this.#out.write(SHOW_CURSOR);
  }
}
