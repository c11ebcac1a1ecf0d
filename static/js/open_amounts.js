// OPEN amounts in scripts, shown as the pages' |open_rounded filter shows them (rewards/amounts.py): base units
// (a string of digits, 18 decimals) rounded half away from zero to 6 decimals for reading, thousands grouped,
// "< 0.000001" for a tiny amount that is not zero, and the exact amount kept in the element's value and title.
// BigInt throughout: an amount of base units does not fit a float. The playground shows each answer's fee with it.
window.LineageOpen = (function () {
  "use strict";
  const DECIMALS = 18n, SHOWN = 6n;
  const group = (digits) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const units = (baseUnits) => BigInt(String(baseUnits === undefined || baseUnits === null ? "0" : baseUnits).trim() || "0");

  // The exact amount in OPEN: "50000000000000000" -> "0.05" (grouped: "1,000.5").
  function exact(baseUnits, grouping) {
    const amount = units(baseUnits), negative = amount < 0n, size = negative ? -amount : amount, one = 10n ** DECIMALS;
    const fraction = (size % one).toString().padStart(Number(DECIMALS), "0").replace(/0+$/, "");
    const whole = (size / one).toString();
    return (negative ? "-" : "") + (grouping ? group(whole) : whole) + (fraction ? "." + fraction : "");
  }

  // Rounded for reading: "6000000000000000004" -> "6", "1234567890500000000000" -> "1,234.567891".
  function rounded(baseUnits) {
    const amount = units(baseUnits), negative = amount < 0n, size = negative ? -amount : amount;
    const step = 10n ** (DECIMALS - SHOWN), remainder = size % step;
    let kept = size / step;
    if (kept === 0n && remainder > 0n) return negative ? "> -0.000001" : "< 0.000001";  // never "0" for an amount
    if (remainder * 2n >= step) kept += 1n;
    const scale = 10n ** SHOWN;
    const fraction = (kept % scale).toString().padStart(Number(SHOWN), "0").replace(/0+$/, "");
    return (negative ? "-" : "") + group((kept / scale).toString()) + (fraction ? "." + fraction : "");
  }

  // Fill a <data> element: the rounded figure as its text, the exact one as its value and title. Something that
  // is not an amount shows as "—" rather than a wrong figure.
  function show(element, baseUnits) {
    try {
      element.textContent = rounded(baseUnits);
      element.value = exact(baseUnits, false);
      element.title = exact(baseUnits, true) + " OPEN";
    } catch (err) {
      element.textContent = "—";
      element.value = "";
      element.removeAttribute("title");
    }
  }

  return { exact, rounded, show };
})();
