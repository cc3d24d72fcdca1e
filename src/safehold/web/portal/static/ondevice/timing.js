// Frame-rate fractions and timestamps exactly as FFmpeg (av_reduce) and Python
// (round(x, 3)) compute them.

/** libavutil av_reduce, exact (BigInt): the closest fraction with num, den <= max. */
export function avReduce(num, den, max) {
  let n = BigInt(num);
  let d = BigInt(den);
  const m = BigInt(max);
  const sign = n < 0n !== d < 0n;
  if (n < 0n) n = -n;
  if (d < 0n) d = -d;
  const gcd = (a, b) => {
    while (b) [a, b] = [b, a % b];
    return a;
  };
  const g = gcd(n, d);
  if (g) {
    n /= g;
    d /= g;
  }
  let a0n = 0n;
  let a0d = 1n;
  let a1n = 1n;
  let a1d = 0n;
  if (n <= m && d <= m) {
    a1n = n;
    a1d = d;
    d = 0n;
  }
  while (d) {
    let x = n / d;
    const nextDen = n - d * x;
    const a2n = x * a1n + a0n;
    const a2d = x * a1d + a0d;
    if (a2n > m || a2d > m) {
      if (a1n) x = (m - a0n) / a1n;
      if (a1d) {
        const y = (m - a0d) / a1d;
        if (y < x) x = y;
      }
      if (d * (2n * x * a1d + a0d) > n * a1d) {
        a1n = x * a1n + a0n;
        a1d = x * a1d + a0d;
      }
      break;
    }
    a0n = a1n;
    a0d = a1d;
    a1n = a2n;
    a1d = a2d;
    n = d;
    d = nextDen;
  }
  return { num: Number(sign ? -a1n : a1n), den: Number(a1d) };
}

/** Python's round(x, 3) (round half to even on the exact binary value). */
export function round3(x) {
  if (!Number.isFinite(x)) return x;
  const neg = x < 0;
  const s = Math.abs(x).toFixed(60); // exact: a double of this size has < 60 binary fraction digits here
  const [whole, frac] = s.split(".");
  const keep = frac.slice(0, 3);
  const rest = frac.slice(3);
  let up = false;
  if (rest[0] > "5") up = true;
  else if (rest[0] === "5") {
    if (/[1-9]/.test(rest.slice(1))) up = true;
    else up = (Number(keep[2]) & 1) === 1; // a tie: to even
  }
  let value = BigInt(whole + keep);
  if (up) value += 1n;
  const str = value.toString().padStart(4, "0");
  const out = Number(str.slice(0, -3) + "." + str.slice(-3));
  return neg ? -out : out;
}

