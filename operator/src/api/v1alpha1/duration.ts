// Go-style durations (`90s`, `5m`, `1h30m`, `250ms`), as the schema's DURATION_PATTERN admits.
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in a duration string; throws a clear error on anything else. */
export function parseDuration(text: string): number {
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  if (text.length === 0) throw new Error('invalid duration "": expected e.g. 90s, 5m or 1h30m');
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw new Error(`invalid duration ${JSON.stringify(text)}: expected e.g. 90s, 5m or 1h30m`);
    total += Number(m[1]) * UNIT_MS[m[2]];
    pos = re.lastIndex;
  }
  return total;
}
