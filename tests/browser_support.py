"""Steps the browser tests and the wallet tests share: logging in and out through the real allauth pages,
signing a message as a wallet does (EIP-191 personal_sign), and checking a page with axe-core."""

import re

from axe_playwright_python.sync_playwright import Axe
from cast_support import PASSWORD
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.sync_api import expect

# axe-core (bundled by the pinned axe-playwright-python, so it runs offline) with the WCAG 2.x A/AA rules and
# its best practices. A page fails on any violation of these impacts.
FAILING_IMPACTS = ("serious", "critical")
AXE_OPTIONS = {"resultTypes": ["violations"]}
_axe = Axe()


def login(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    expect(page.locator(".account-menu summary")).to_be_visible()


def sign_up(page, live_server, email: str, password: str, *, check_accessible: bool = False):
    """A new account through the sign-up form, signed in afterwards (the account menu shows)."""
    page.goto(f"{live_server.url}/accounts/signup/")
    if check_accessible:
        assert_accessible(page)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(password)
    page.get_by_label("Password (again):", exact=True).fill(password)
    page.get_by_role("button", name=re.compile("Sign Up", re.I)).click()
    expect(page.locator(".account-menu summary")).to_be_visible()


def logout(page):
    page.locator(".account-menu summary").click()
    page.get_by_role("button", name="Log out").click()


def personal_sign(account, message: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=message), private_key=account.key).signature).hex()


def accessibility_violations(page, impacts=FAILING_IMPACTS) -> list[dict]:
    """axe-core's violations on the page as it is now, of these impacts."""
    page.wait_for_load_state("load")
    results = _axe.run(page, options=AXE_OPTIONS)
    return [v for v in results.response["violations"] if v.get("impact") in impacts]


def describe_violations(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} [{violation['helpUrl']}]")
        for node in violation["nodes"][:5]:
            lines.append(f"    at {', '.join(map(str, node['target']))}: {node['html'][:200]}")
            summary = node.get("failureSummary", "").replace("\n", " ")
            if summary:
                lines.append(f"      {summary[:300]}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    … and {len(violation['nodes']) - 5} more elements")
    return "\n".join(lines)


def assert_accessible(page):
    """Fail on any serious or critical axe-core violation of the page as it is now (its URL in the message)."""
    violations = accessibility_violations(page)
    assert not violations, f"Accessibility violations on {page.url}:\n{describe_violations(violations)}"


def misaligned_controls(locator, tolerance: float = 2.0) -> list[str]:
    """Controls laid side by side (fields, selects, buttons) that do not line up: on each line they wrap onto, each
    must have the others' height and bottom edge (within `tolerance` px). Empty when all line up."""
    boxes = sorted(locator.evaluate_all(
        "els => els.filter(e => e.offsetParent !== null).map(e => { const r = e.getBoundingClientRect();"
        " return [r.top, r.bottom, e.outerHTML.slice(0, 80)]; })"))
    lines, problems = [], []
    for top, bottom, html in boxes:  # a control whose box overlaps the line's vertically is on that line
        if lines and top < max(b for _, b, _ in lines[-1]):
            lines[-1].append((top, bottom, html))
        else:
            lines.append([(top, bottom, html)])
    for line in lines:
        heights, bottoms = [b - t for t, b, _ in line], [b for _, b, _ in line]
        if max(heights) - min(heights) > tolerance or max(bottoms) - min(bottoms) > tolerance:
            problems.append(", ".join(f"{html} (height {b - t:.1f}, bottom {b:.1f})" for t, b, html in line))
    return problems


def figures_off_their_labels(page, selector: str = "dl.stats > div") -> list[str]:
    """Label-and-figure pairs (a <dt> and its <dd>) whose figure does not start where its label starts."""
    return page.locator(selector).evaluate_all(
        "pairs => pairs.filter(p => Math.abs(p.querySelector('dt').getBoundingClientRect().left"
        " - p.querySelector('dd').getBoundingClientRect().left) > 1).map(p => p.innerText.replace(/\\s+/g, ' '))")
