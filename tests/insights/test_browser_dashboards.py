"""The dashboards in Chromium: charts actually draw (canvas painted, not blank) with axis labels that do not overlap
(#22: a year of daily dates ran into each other), the range selector swaps them through htmx, drill-down pages
draw, and an empty platform shows its "no data yet" state."""

import pytest
from browser_support import assert_accessible
from playwright.sync_api import expect

from datanets import services as datanet_services
from insights.catalog import OVERVIEW_CHARTS
from lineage.demo.history import history_generate

pytestmark = pytest.mark.browser

# True when the canvas has at least one painted (non-transparent) pixel.
PAINTED = """(canvas) => {
  const ctx = canvas.getContext("2d");
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) return canvas.width > 0 && canvas.height > 0; }
  return false;
}"""


# Pairs of neighbouring axis labels that overlap (or come within 4 px): a label is as wide as its text in the tick
# font when laid flat, one line high otherwise, centred on its tick.
AXIS_LABEL_OVERLAPS = """(canvas) => {
  const chart = window.Chart.getChart(canvas);
  const overlaps = [];
  for (const scale of Object.values(chart.scales)) {
    if (!scale.options.display || !scale.options.ticks.display) continue;
    const font = window.Chart.helpers.toFont(scale.options.ticks.font);
    const flat = scale.isHorizontal() && !scale.labelRotation;
    chart.ctx.save();
    chart.ctx.font = font.string;
    const labels = scale.ticks.map((tick, i) => {
      const lines = [].concat(tick.label).map(String);
      const size = flat ? Math.max(...lines.map((line) => chart.ctx.measureText(line).width))
                        : font.lineHeight * (scale.isHorizontal() ? 1 : lines.length);
      return {text: lines.join(" "), at: scale.getPixelForTick(i), size};
    });
    chart.ctx.restore();
    for (let i = 1; i < labels.length; i++) {
      const [a, b] = [labels[i - 1], labels[i]];
      if (Math.abs(b.at - a.at) < (a.size + b.size) / 2 + 4) {
        overlaps.push(`${(canvas.closest("figure") || canvas).id} ${scale.id}: "${a.text}" and "${b.text}"`);
      }
    }
  }
  return overlaps;
}"""


def _drawn(page):
    canvases = page.locator("canvas[data-chart]")
    expect(page.locator('canvas[data-drawn="true"]')).to_have_count(canvases.count())
    overlaps = [o for i in range(canvases.count()) for o in canvases.nth(i).evaluate(AXIS_LABEL_OVERLAPS)]
    assert not overlaps, f"axis labels overlap on {page.url}: {overlaps}"
    return [canvases.nth(i).evaluate(PAINTED) for i in range(canvases.count())]


def test_charts_draw_with_a_year_of_history_and_the_range_swaps_them(live_server, page, alice, screenshot):
    datanet = datanet_services.datanet_create(owner=alice, name="Support tickets", task_type="text-classification",
                                              label_set=["billing", "shipping"])
    history_generate(days=365, seed=0)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/insights/")
    painted = _drawn(page)
    assert len(painted) == len(OVERVIEW_CHARTS) + 2 and all(painted)
    assert page.get_by_role("note").filter(has_text="synthetic history").is_visible()
    velocity = page.locator("#chart-contribution_velocity canvas")
    assert "Contribution velocity" in velocity.get_attribute("aria-label")
    # The table alternative holds the same points.
    page.get_by_text("Table: contribution velocity").click()
    assert page.locator("#chart-contribution_velocity tbody tr").count() == 90
    assert_accessible(page)
    screenshot("insights-dashboard")

    page.get_by_label("Period", exact=True).select_option("365d")
    page.wait_for_url("**/insights/?range=365d*")
    painted = _drawn(page)
    assert all(painted) and len(painted) == len(OVERVIEW_CHARTS) + 2
    page.get_by_text("Table: contribution velocity").click()
    assert page.locator("#chart-contribution_velocity tbody tr").count() in (53, 54)  # automatic: weekly points
    assert_accessible(page)
    page.get_by_label("Points per", exact=True).select_option("day")
    page.wait_for_url("**/insights/?range=365d&bucket=day*")
    assert all(_drawn(page))
    page.get_by_text("Table: contribution velocity").click()
    assert page.locator("#chart-contribution_velocity tbody tr").count() == 365

    page.get_by_role("link", name="Support tickets").click()
    page.wait_for_url(f"**/insights/datanets/{datanet.slug}/*")
    painted = _drawn(page)
    assert len(painted) == 3 and all(painted)
    assert page.get_by_role("heading", name="Support tickets", level=1).is_visible()
    assert_accessible(page)
    assert errors == []


def test_empty_dashboard_shows_no_data_yet(live_server, page, db):
    page.goto(f"{live_server.url}/insights/")
    assert page.get_by_role("heading", name="No data yet").is_visible()
    assert page.locator("canvas").count() == 0
    assert page.locator(".empty-state").first.is_visible()
    assert_accessible(page)
    page.get_by_label("Period", exact=True).select_option("7d")
    page.wait_for_url("**/insights/?range=7d*")
    assert page.get_by_role("heading", name="No data yet").is_visible()
    assert_accessible(page)
