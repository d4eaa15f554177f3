// LF-terminated line splitting with a length bound, for both ends of MAILQv2.

export class LineSplitter {
  readonly #maxLength: number;
  #buffer = '';

  constructor(maxLength: number) {
    this.#maxLength = maxLength;
  }

  /** Adds received text; returns the complete lines (without LF or CR), or 'too-long'. */
  push(chunk: string): string[] | 'too-long' {
    this.#buffer += chunk;
    const lines: string[] = [];
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl).replace(/\r$/, '');
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line.length > this.#maxLength) return 'too-long';
      lines.push(line);
    }
    if (this.#buffer.length > this.#maxLength) return 'too-long';
    return lines;
  }
}
