"""The earnings API answers a page at a time; the SDK's `earnings.list()` follows the pages against a live
server, so its users still get every row, each once, even when new earnings arrive while it pages."""

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

OPEN = 10**18
MODEL = "ab" * 32


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that notes each earnings page asked for, and can act after the first one."""

    def __init__(self, after_first_page=None):
        super().__init__()
        self.pages, self.after_first_page = [], after_first_page

    def handle_request(self, request):
        response = super().handle_request(request)
        if request.url.path.endswith("/rewards/earnings/"):
            self.pages.append(dict(request.url.params))
            if len(self.pages) == 1 and self.after_first_page:
                response.read()  # the first page as the server sent it, before anything changes
                self.after_first_page()
        return response


@pytest.fixture
def settle(dora, alice, charlie):
    from rewards import services

    services.credit_grant(actor=None, user=charlie, amount=50 * OPEN, reason="tests")

    def fees(*names):
        for name in names:
            services.fee_settle(inference_id=name, payer=charlie, model_owner=alice, fee=OPEN + 3,
                                contributor_shares={dora.pk: 10**6}, model_version_hash=MODEL, receipt_id=f"rc-{name}")

    return fees


def test_the_sdk_follows_every_page_of_earnings(settle, lineage_for, dora):
    from rewards import ledger
    from rewards.models import AccountKind

    settle(*(f"inf-{i}" for i in range(7)))
    transport = RecordingTransport()
    earnings = lineage_for(dora, "read", transport=transport).earnings.list(page_size=3)
    assert transport.pages == [{"page": str(n), "page_size": "3"} for n in (1, 2, 3)]
    assert [item.inference_id for item in earnings.items] == [f"inf-{i}" for i in range(6, -1, -1)]
    assert len({item.id for item in earnings.items}) == 7 and all(item.role == "contributor" for item in earnings.items)
    earned = ledger.balance(kind=AccountKind.EARNINGS, user=dora)
    assert earnings.totals["earned"] == sum(item.amount for item in earnings.items) == earned > 0
    assert (earnings.raw["count"], "next" in earnings.raw) == (7, False)
    # The default asks for big pages: one request here.
    transport = RecordingTransport()
    assert len(lineage_for(dora, "read", transport=transport).earnings.list().items) == 7
    assert transport.pages == [{"page": "1", "page_size": "500"}]


def test_earnings_arriving_while_paging_neither_repeat_nor_hide_a_row(settle, lineage_for, dora):
    settle(*(f"old-{i}" for i in range(7)))
    # After page 1, two new answers push every older share two places down: page 2 repeats two rows of page 1.
    transport = RecordingTransport(after_first_page=lambda: settle("new-1", "new-2"))
    earnings = lineage_for(dora, "read", transport=transport).earnings.list(page_size=3)
    assert len(transport.pages) == 3
    assert [item.inference_id for item in earnings.items] == [f"old-{i}" for i in range(6, -1, -1)]


def test_no_earnings_is_an_empty_list(lineage_for, dora):
    earnings = lineage_for(dora, "read").earnings.list()
    assert earnings.items == [] and earnings.totals["earned"] == 0
