"""Datanet pages. Thin: permissions come from selectors, writes go through services; htmx requests get
the page's partial only."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from datanets.ingest.stats import column_statistics
from lineage.csv_export import csv_download
from lineage.forms import form_errors_from
from lineage.htmx import HtmxHttpRequest, render_page_or_partial

from . import review_actions, selectors, services
from .forms import (
    AccessRequestForm,
    DatanetForm,
    DatanetSettingsForm,
    DocumentUploadForm,
    PublishForm,
    TypedRowsGrid,
    UploadForm,
)
from .models import ContributionSource, ContributionState, RecordStatus, Role, TaskType, TrainingAccessRequest
from .review_views import row_labels_chosen

PAGE_SIZE = 50


def _context(request, datanet, **extra):
    return {"datanet": datanet, "perms": selectors.datanet_permissions(datanet=datanet, user=request.user), **extra}


# --- Datanets ----------------------------------------------------------------------------------------

def index(request: HtmxHttpRequest):
    query, task_type, tag = request.GET.get("q", "").strip(), request.GET.get("task_type", ""), request.GET.get("tag", "")
    datanets = selectors.datanet_search(user=request.user, query=query, task_type=task_type, tag=tag)
    context = {"datanets": datanets, "q": query, "task_type": task_type, "tag": tag, "task_types": TaskType.choices}
    return render_page_or_partial(request, "datanets/index.html", context, partial="results")


@login_required
def create(request):
    form = DatanetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            datanet = services.datanet_create(owner=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"“{datanet.name}” is ready for contributions.")
            return redirect(datanet)
    return render(request, "datanets/create.html", {"form": form})


def detail(request, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    context = _context(
        request, datanet,
        stats=selectors.datanet_stats(datanet=datanet),
        versions=selectors.versions_for(datanet=datanet)[:5],
        recent=selectors.datanet_recent_contributions(datanet=datanet),
        my_contributions=selectors.contributions_for_user(user=request.user, datanet=datanet)[:5]
        if request.user.is_authenticated else [],
        access_request=TrainingAccessRequest.objects.filter(datanet=datanet, requester=request.user).first()
        if request.user.is_authenticated else None,
        access_form=AccessRequestForm(),
        documents=selectors.documents_in(datanet=datanet) if datanet.task_type == TaskType.DOCUMENTS else None,
    )
    return render(request, "datanets/detail.html", context)


@login_required
def settings_view(request, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    perms = selectors.datanet_permissions(datanet=datanet, user=request.user)
    if not perms.can_manage:
        raise PermissionDenied("Only the owner changes a Datanet's settings.")
    initial = {field: getattr(datanet, field) for field in DatanetSettingsForm.base_fields}
    form = DatanetSettingsForm(request.POST or None, initial=initial, datanet=datanet)
    if request.method == "POST" and form.is_valid():
        changes = {k: v for k, v in form.cleaned_data.items() if k in services.EDITABLE_FIELDS}
        try:
            services.datanet_update(datanet=datanet, actor=request.user, **changes)
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("datanets:settings", slug=datanet.slug)
    members = datanet.memberships.select_related("user").exclude(role=Role.OWNER)
    context = _context(request, datanet, form=form, members=members,
                       access_requests=selectors.training_access_requests_for(datanet=datanet))
    return render(request, "datanets/settings.html", context)


@login_required
@require_POST
def members(request, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    User = get_user_model()
    user = User.objects.filter(email__iexact=request.POST.get("email", "").strip()).first()
    if user is None:
        messages.error(request, "No account uses that email address. Ask them to sign up first.")
        return redirect("datanets:settings", slug=slug)
    try:
        if request.POST.get("action") == "remove":
            services.membership_remove(datanet=datanet, actor=request.user, user=user)
            messages.success(request, f"{user.public_name} is no longer a member.")
        else:
            services.membership_set(datanet=datanet, actor=request.user, user=user, role=request.POST.get("role", ""))
            messages.success(request, f"{user.public_name} is now a {request.POST.get('role')}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("datanets:settings", slug=slug)


# --- Contributions -----------------------------------------------------------------------------------

@login_required
def contribute(request, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    perms = selectors.datanet_permissions(datanet=datanet, user=request.user)
    documents = datanet.task_type == TaskType.DOCUMENTS  # documents are uploaded and split; rows are not typed
    upload_form = DocumentUploadForm() if documents else UploadForm()
    uploading = documents or "file" in request.FILES
    typed_grid = None if documents else TypedRowsGrid(datanet.schema)
    row_error = None
    if request.method == "POST" and perms.can_contribute:
        try:
            if documents:
                upload_form = DocumentUploadForm(request.POST, request.FILES)
                if upload_form.is_valid():
                    contribution = services.contribution_create_from_documents(
                        datanet=datanet, contributor=request.user, uploaded_files=upload_form.cleaned_data["documents"],
                        source=ContributionSource.UPLOAD,
                    )
                    return redirect(contribution)
            elif "file" in request.FILES:
                upload_form = UploadForm(request.POST, request.FILES)
                if upload_form.is_valid():
                    contribution = services.contribution_create_from_file(
                        datanet=datanet, contributor=request.user, uploaded_file=upload_form.cleaned_data["file"],
                        source=ContributionSource.UPLOAD,
                    )
                    return redirect(contribution)
            else:
                typed_grid = TypedRowsGrid(datanet.schema, request.POST)  # drawn again as typed if refused
                contribution = services.contribution_create_from_rows(
                    datanet=datanet, contributor=request.user, rows=typed_grid.rows(), source=ContributionSource.FORM
                )
                return redirect(contribution)
        except ValidationError as exc:
            if uploading:
                form_errors_from(upload_form, exc)
            else:
                row_error = " ".join(exc.messages)
        except PermissionDenied as exc:  # e.g. the Datanet requires a stake: say so on the form
            if uploading:
                upload_form.add_error(None, str(exc))
            else:
                row_error = str(exc)
    context = _context(request, datanet, upload_form=upload_form, row_error=row_error, documents=documents,
                       columns=datanet.schema.columns, typed_grid=typed_grid)
    return render(request, "datanets/contribute.html", context)


@login_required
def contribution(request: HtmxHttpRequest, slug, pk):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    item = selectors.contribution_get_for(datanet=datanet, pk=pk, user=request.user)
    errors = Paginator(item.row_errors.all(), PAGE_SIZE).get_page(request.GET.get("errors_page"))
    rows = Paginator(item.records.select_related("near_duplicate_of").order_by("row_number"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    working = item.state in (ContributionState.RECEIVED, ContributionState.VALIDATING)
    context = _context(request, datanet, contribution=item, errors=errors, rows=rows, working=working,
                       steps=_contribution_steps(item.state))
    return render_page_or_partial(request, "datanets/contribution.html", context, partial="status")


@login_required
def my_contributions(request):
    """Every upload of the signed-in user across Datanets, its rows' outcome, and the rows curators
    rejected with their reasons."""
    uploads = Paginator(selectors.contributions_overview_for(user=request.user), PAGE_SIZE).get_page(
        request.GET.get("page"))
    rejected = Paginator(selectors.rows_rejected_by_curators_for(user=request.user), PAGE_SIZE).get_page(
        request.GET.get("rejected_page"))
    visible = selectors.datanet_ids_visible_among(
        user=request.user, ids={c.datanet_id for c in uploads} | {r.datanet_id for r in rejected})
    week_ago = timezone.now() - timedelta(days=7)
    context = {"uploads": uploads, "rejected": rejected, "visible_datanet_ids": visible,
               "rejected_this_week": selectors.rows_rejected_recently_count(user=request.user, since=week_ago)}
    return render(request, "datanets/my_contributions.html", context)


CONTRIBUTION_FLOW = (ContributionState.RECEIVED, ContributionState.VALIDATING, ContributionState.IN_REVIEW,
                     ContributionState.DONE)


def _contribution_steps(state: str) -> list[dict]:
    """The progress steps with each one's status (`done`, `current`, `todo`, or `failed`): a file that
    could not be read stopped while validating, so its steps end there, in a Failed step."""
    labels = dict(ContributionState.choices)
    if state == ContributionState.FAILED:
        return [{"key": ContributionState.RECEIVED, "label": labels[ContributionState.RECEIVED], "status": "done"},
                {"key": ContributionState.VALIDATING, "label": labels[ContributionState.VALIDATING], "status": "done"},
                {"key": ContributionState.FAILED, "label": labels[ContributionState.FAILED], "status": "failed"}]
    position = CONTRIBUTION_FLOW.index(state) if state in CONTRIBUTION_FLOW else 0
    return [{"key": key, "label": labels[key],
             "status": "done" if i < position else "current" if i == position else "todo"}
            for i, key in enumerate(CONTRIBUTION_FLOW)]


@login_required
def contribution_errors_csv(request, slug, pk):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    item = selectors.contribution_get_for(datanet=datanet, pk=pk, user=request.user)
    header, rows = selectors.contribution_error_table(contribution=item)
    return csv_download(header=header, rows=rows, filename=f"contribution-{item.pk}-errors.csv")


# --- Review ------------------------------------------------------------------------------------------

REVIEW_FILTERS = ("status", "flag", "contributor", "label", "q")


def _review_filters(data) -> dict:
    filters = {key: data.get(key, "").strip() for key in REVIEW_FILTERS}
    if "status" not in data:
        filters["status"] = RecordStatus.PENDING
    return filters


def _review_queryset(datanet, filters):
    return selectors.review_queue(
        datanet=datanet, status=filters["status"], flag=filters["flag"], contributor=filters["contributor"],
        label=filters["label"], query=filters["q"],
    )


@login_required
def review(request: HtmxHttpRequest, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    perms = selectors.datanet_permissions(datanet=datanet, user=request.user)
    if not perms.can_curate:
        raise PermissionDenied("Only this Datanet's curators review rows.")
    filters = _review_filters(request.GET)
    page = Paginator(_review_queryset(datanet, filters), PAGE_SIZE).get_page(request.GET.get("page"))
    contributors = datanet.records.values_list("contributor__username", flat=True).distinct().order_by("contributor__username")
    context = _context(
        request, datanet, page=page, filters=filters, progress=selectors.review_progress(datanet=datanet),
        statuses=RecordStatus.choices, contributors=contributors, filter_query=request.GET.urlencode(),
    )
    return render_page_or_partial(request, "datanets/review.html", context, partial="queue")


@login_required
@require_POST
def review_decide(request: HtmxHttpRequest, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    filters = _review_filters(request.POST)
    if request.POST.get("select_all_filtered") == "on":
        record_ids = list(_review_queryset(datanet, filters).values_list("pk", flat=True))
    else:
        record_ids = [pk for pk in request.POST.getlist("record_ids") if pk.isdigit()]
    try:
        if not record_ids:
            raise ValidationError("Select at least one row first.")
        if request.POST.get("decision") == "accept" and datanet.label_set:
            # Labels changed in the rows' pickers are applied with the accept, in one transaction.
            changed = review_actions.records_accept_relabelled(
                datanet=datanet, reviewer=request.user, record_ids=record_ids,
                labels=row_labels_chosen(request.POST, record_ids),
            )
        else:
            changed = services.records_review(
                datanet=datanet, reviewer=request.user, record_ids=record_ids,
                decision=request.POST.get("decision", ""), reason=request.POST.get("reason", ""),
            )
        messages.success(request, f"{changed} row{'s' if changed != 1 else ''} {request.POST.get('decision')}ed.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    query = "&".join(f"{key}={value}" for key, value in filters.items() if value)
    url = f"{reverse('datanets:review', args=[slug])}?{query}"
    if request.htmx:
        request.GET = request.GET.copy()
        request.GET.update(filters)
        request.method = "GET"
        return review(request, slug)
    return redirect(url)


# --- Versions ----------------------------------------------------------------------------------------

def versions(request, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    perms = selectors.datanet_permissions(datanet=datanet, user=request.user)
    form = PublishForm(request.POST or None)
    if request.method == "POST":
        if not perms.can_curate:
            raise PermissionDenied("Only curators publish versions.")
        if form.is_valid():
            try:
                version = services.version_publish(datanet=datanet, actor=request.user, notes=form.cleaned_data["notes"])
            except ValidationError as exc:
                form_errors_from(form, exc)
            else:
                rows = f"{version.row_count} row{pluralize(version.row_count)}"
                messages.success(request, f"Published v{version.number} ({rows}).")
                return redirect("datanets:version", slug=slug, number=version.number)
    context = _context(request, datanet, versions=selectors.versions_for(datanet=datanet), form=form,
                       stats=selectors.datanet_stats(datanet=datanet))
    return render(request, "datanets/versions.html", context)


def version(request, slug, number):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    item = selectors.version_get(datanet=datanet, number=number)
    previous = datanet.versions.filter(number__lt=number).order_by("-number").first()
    documents = selectors.documents_in(datanet=datanet, version=item) if datanet.task_type == TaskType.DOCUMENTS else None
    context = _context(request, datanet, version=item, previous=previous, check=None, documents=documents,
                       contributors=sorted(item.manifest.get("rows_by_contributor", {}).items(), key=lambda kv: -len(kv[1])))
    return render(request, "datanets/version.html", context)


@login_required
@require_POST
def version_verify(request, slug, number):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    item = selectors.version_get(datanet=datanet, number=number)
    check = services.version_verify(version=item, actor=request.user)
    context = _context(request, datanet, version=item, check=check)
    return render(request, "datanets/version.html#verify", context)


def version_download(request, slug, number, fmt):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    if not selectors.datanet_permissions(datanet=datanet, user=request.user).can_download:
        raise PermissionDenied("Downloading needs training access to this Datanet; request it on the Datanet's page.")
    item = selectors.version_get(datanet=datanet, number=number)
    try:
        content_type, filename, stream = services.version_export(version=item, fmt=fmt)
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=400, content_type="text/plain")
    response = StreamingHttpResponse(stream, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def version_diff(request, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    all_versions = list(selectors.versions_for(datanet=datanet))
    diff = error = None
    numbers = [v.number for v in all_versions]
    try:
        to_number = int(request.GET.get("to") or (numbers[0] if numbers else 0))
        from_number = int(request.GET.get("from") or (numbers[1] if len(numbers) > 1 else to_number))
    except ValueError:
        from_number = to_number = 0
        error = "Version numbers are whole numbers, e.g. ?from=1&to=2."
    if not error and from_number in numbers and to_number in numbers:
        a = selectors.version_get(datanet=datanet, number=from_number)
        b = selectors.version_get(datanet=datanet, number=to_number)
        diff = services.version_diff(a=a, b=b)
        diff["added_rows"] = selectors.version_rows_among(version=b, row_ids=diff["added_row_ids"], limit=PAGE_SIZE)
        diff["removed_rows"] = selectors.version_rows_among(version=a, row_ids=diff["removed_row_ids"],
                                                           limit=PAGE_SIZE)
        diff["page_size"] = PAGE_SIZE
    elif not error and numbers:
        error = "Choose two published versions."
    context = _context(request, datanet, diff=diff, error=error, numbers=numbers, from_number=from_number, to_number=to_number)
    return render(request, "datanets/diff.html", context)


# --- Data viewer, contributors -----------------------------------------------------------------------

def rows(request: HtmxHttpRequest, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    number = request.GET.get("version", "")
    version_obj = selectors.version_get(datanet=datanet, number=int(number)) if number.isdigit() else None
    query = request.GET.get("q", "").strip()
    queryset = selectors.rows_for_viewer(datanet=datanet, version=version_obj, query=query, user=request.user)
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    stats = column_statistics((r.fields for r in queryset[:5000]), datanet.schema)
    context = _context(request, datanet, page=page, q=query, version=version_obj, stats=stats.values(),
                       columns=datanet.schema.columns, versions=selectors.versions_for(datanet=datanet))
    return render_page_or_partial(request, "datanets/rows.html", context, partial="table")


def contributors(request, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    return render(request, "datanets/contributors.html", _context(request, datanet, board=selectors.leaderboard(datanet=datanet)))


def contributor(request, slug, username):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    profile = selectors.contributor_profile(datanet=datanet, username=username)
    return render(request, "datanets/contributor.html", _context(request, datanet, profile=profile, username=username))


# --- Training access ---------------------------------------------------------------------------------

@login_required
@require_POST
def access_request(request, slug):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    form = AccessRequestForm(request.POST)
    try:
        if form.is_valid():
            services.access_request_create(datanet=datanet, requester=request.user, message=form.cleaned_data["message"])
            messages.success(request, "Request sent. The owner will approve or refuse it.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(datanet)


@login_required
@require_POST
def access_decide(request, slug, pk):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    item = get_object_or_404(TrainingAccessRequest, datanet=datanet, pk=pk)
    services.access_request_decide(access_request=item, actor=request.user, approve=request.POST.get("approve") == "1")
    messages.success(request, f"Request from {item.requester.public_name} {'approved' if request.POST.get('approve') == '1' else 'refused'}.")
    return redirect("datanets:settings", slug=slug)
