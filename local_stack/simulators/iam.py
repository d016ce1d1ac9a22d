"""An IAM simulator: service accounts (IAM v1) and the IAM policies of projects (Cloud Resource
Manager v1), buckets (Cloud Storage JSON API v1) and service accounts, in memory.

Each API has its own HTTP server (``sim.urls["iam"]``, ``["resourcemanager"]``, ``["storage"]``) so a
client that sends a call to the wrong endpoint gets 404. Every request body and query parameter is
validated against the API's discovery document (unknown field or wrong type -> 400 INVALID_ARGUMENT,
as Google answers); Cloud Storage paths are matched relative to its ``servicePath`` (``storage/v1/``).
A service account created moments ago is not visible everywhere yet (IAM is eventually consistent,
https://cloud.google.com/iam/docs/overview#consistency): for ``propagation_seconds`` after its create,
reading it or its policy answers 403 "Permission ... denied on resource (or it may not exist)", and
a policy naming it answers 400 "Service account ... does not exist." (terraform-provider-google
polls after a create for this reason and retries both answers: resource_google_service_account.go,
transport/error_retry_predicates.go IamServiceAccountNotFound, IsForbiddenIamServiceAccountRetryableError).
Policies carry etags: a write with a stale etag is refused (409 ABORTED from IAM and Resource Manager,
412 conditionNotMet from Cloud Storage), a write without one is accepted and counted in
``blind_writes``. Members that are service-account emails must name an existing account (400
"does not exist", as IAM answers). Errors are Google-shaped JSON; every request is recorded.

    sim.inject("status", 503, count=2, match="setIamPolicy")        # transient bursts (429/503)
    sim.inject("drop", count=1, match="serviceAccounts.create")     # connection closed without answer
    sim.inject("lose_response", match="serviceAccounts.create")     # done, but the answer is lost
    sim.inject("concurrent", match="projects.setIamPolicy",         # someone else writes the policy
               role="roles/viewer", member="user:bob@example.com")  # between our read and our write

Run standalone (prints its URLs): python local_stack/simulators/iam.py
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import threading
import time
from urllib.parse import parse_qsl, unquote

try:
    from .discovery import Discovery
    from .google_http import ApiError, JsonHandler, MultiApiSimulator
except ImportError:  # run as a script
    from discovery import Discovery  # type: ignore[no-redef]
    from google_http import ApiError, JsonHandler, MultiApiSimulator  # type: ignore[no-redef]

APIS = {"iam": "iam.v1", "resourcemanager": "cloudresourcemanager.v1", "storage": "storage.v1"}
STORAGE_REASONS = {400: "invalid", 401: "required", 403: "forbidden", 404: "notFound", 409: "conflict",
                   412: "conditionNotMet", 429: "rateLimitExceeded", 500: "backendError", 503: "backendError"}
ACCOUNT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
SA_MEMBER = re.compile(r"^serviceAccount:([^@\[\]]+@([a-z][-a-z0-9]*)\.iam\.gserviceaccount\.com)$")
WI_MEMBER = re.compile(r"^serviceAccount:[a-z][-a-z0-9]*\.svc\.id\.goog\[[a-z0-9][-a-z0-9]*/[a-z0-9][-.a-z0-9]*\]$")
MEMBER = re.compile(r"^(allUsers|allAuthenticatedUsers|(user|group|serviceAccount|domain|deleted:serviceAccount|"
                    r"principal|principalSet|projectOwner|projectEditor|projectViewer):\S+)$")
WRITE_SUFFIXES = ("create", "patch", "delete", "setIamPolicy", "update")


def _etag(counter):
    return base64.b64encode(f"etag-{counter}".encode()).decode()


class IamSimulator(MultiApiSimulator):
    def __init__(self, propagation_seconds=1.0):
        self._init_apis({api: Discovery(doc) for api, doc in APIS.items()})
        self.propagation_seconds = propagation_seconds
        self.accounts = {}            # email -> ServiceAccount
        self.created = {}             # email -> time.monotonic() of its create
        self.policies = {}            # ("project", id) | ("bucket", name) | ("account", email) -> Policy
        self.buckets = set()
        self.foreign_buckets = set()  # buckets of another project: the caller may not even read them
        self.workload_pools = None    # None: every PROJECT.svc.id.goog exists; a set: only those (GKE makes one)
        self.schema_rejections = []   # (method id, problems)
        self.blind_writes = 0         # setIamPolicy without an etag
        self._etags = itertools.count(1)
        self._ids = itertools.count(104892734562394857000)

    # ----------------------------------------------------------------- test API
    def inject(self, kind, status=None, *, count=1, match="", reason=None, message=None, role=None, member=None):
        with self.lock:
            self.faults.append({"kind": kind, "status": status, "count": count, "match": match, "reason": reason,
                                "message": message, "role": role, "member": member})

    def add_foreign_bucket(self, name):
        """A bucket of someone else's project (bucket names are global): buckets.get answers 403."""
        with self.lock:
            self.foreign_buckets.add(name)

    def add_bucket(self, name, project="sim-project"):
        with self.lock:
            self.buckets.add(name)
            self.policies[("bucket", name)] = self._new_policy([
                {"role": "roles/storage.legacyBucketOwner", "members": [f"projectEditor:{project}", f"projectOwner:{project}"]},
                {"role": "roles/storage.legacyBucketReader", "members": [f"projectViewer:{project}"]},
            ])

    def add_member(self, key, role, member):
        """Another principal's change: add member to role (a new etag)."""
        with self.lock:
            policy = self._policy(key)
            for binding in policy["bindings"]:
                if binding["role"] == role and not binding.get("condition"):
                    binding["members"] = sorted(set(binding["members"]) | {member})
                    break
            else:
                policy["bindings"].append({"role": role, "members": [member]})
            policy["etag"] = _etag(next(self._etags))

    def members(self, key, role):
        with self.lock:
            policy = self.policies.get(key) or {}
            return sorted({m for b in policy.get("bindings", []) if b["role"] == role and not b.get("condition")
                           for m in b["members"]})

    def calls(self, method_suffix=None, writes_only=False):
        with self.lock:
            found = [r for r in self.requests if r[3] and (method_suffix is None or r[3].endswith(method_suffix))]
        if writes_only:
            found = [r for r in found if r[3].rsplit(".", 1)[1] in WRITE_SUFFIXES]
        return found

    def write_calls(self):
        return self.calls(writes_only=True)

    def _handler(self):
        return _Handler

    # ----------------------------------------------------------------- state
    def _new_policy(self, bindings=None):
        return {"version": 1, "bindings": bindings or [], "etag": _etag(next(self._etags))}

    def _policy(self, key):
        if key not in self.policies:
            if key[0] == "bucket":
                raise ApiError(404, "The specified bucket does not exist.")
            if key[0] == "account":
                raise ApiError(404, f"Service account projects/-/serviceAccounts/{key[1]} not found.")
            self.policies[key] = self._new_policy([{"role": "roles/owner", "members": ["user:owner@example.com"]}])
        return self.policies[key]

    def visible(self, email):
        """Whether IAM answers for this account everywhere yet (it propagates after its create)."""
        return time.monotonic() - self.created.get(email, float("-inf")) >= self.propagation_seconds

    def _account(self, project, ref, permission="iam.serviceAccounts.get"):
        account = self.accounts.get(ref) or next((a for a in self.accounts.values() if a["uniqueId"] == ref), None)
        if account is not None and not self.visible(account["email"]):
            raise ApiError(403, f"Permission '{permission}' denied on resource (or it may not exist).")
        if account is None or (project != "-" and account["projectId"] != project):
            raise ApiError(404, "Unknown service account", "NOT_FOUND")
        return account

    def _check_members(self, bindings):
        for binding in bindings:
            if not binding.get("role") or not binding.get("members"):
                raise ApiError(400, "Policy bindings must have a role and at least one member.")
            for member in binding["members"]:
                if not MEMBER.match(member):
                    raise ApiError(400, f"Invalid member: {member}")
                found = SA_MEMBER.match(member)
                if found and (found.group(1) not in self.accounts or not self.visible(found.group(1))):
                    raise ApiError(400, f"Service account {found.group(1)} does not exist.")
                if member.startswith("serviceAccount:") and ".svc.id.goog" in member:
                    if not WI_MEMBER.match(member):
                        raise ApiError(400, f"Invalid service account ({member[15:]}).")
                    pool = member[15:].split("[", 1)[0]
                    if self.workload_pools is not None and pool not in self.workload_pools:
                        raise ApiError(400, f"Identity Pool does not exist ({pool}). Please check that you specified "
                                            "a valid resource name as returned in the `name` attribute in the "
                                            "configuration API.")
            if binding.get("condition") is not None and not binding["condition"].get("expression"):
                raise ApiError(400, "A condition needs an expression.")

    def _set_policy(self, key, policy, storage=False):
        current = self._policy(key)
        etag = policy.get("etag")
        if not etag:
            self.blind_writes += 1
        elif etag != current["etag"]:
            if storage:
                raise ApiError(412, "Precondition Failed")
            raise ApiError(409, "There were concurrent policy changes. Please retry the whole read-modify-write "
                                "with exponential backoff.", "ABORTED")
        bindings = policy.get("bindings") or []
        self._check_members(bindings)
        if any(b.get("condition") for b in bindings) and int(policy.get("version") or 1) < 3:
            raise ApiError(400, "Conditional bindings require policy version 3.")
        stored = {"version": int(policy.get("version") or 1), "bindings": copy.deepcopy(bindings),
                  "etag": _etag(next(self._etags))}
        if policy.get("auditConfigs"):
            stored["auditConfigs"] = copy.deepcopy(policy["auditConfigs"])
        self.policies[key] = stored
        return self._render(key, stored, storage)

    def _render(self, key, policy, storage=False):
        policy = copy.deepcopy(policy)
        if storage:
            policy.update({"kind": "storage#policy", "resourceId": f"projects/_/buckets/{key[1]}"})
        return policy

    # ----------------------------------------------------------------- dispatch
    def handle(self, api, verb, path, query, body):
        with self.lock:
            discovery = self.discovery[api]
            prefix = self.prefix[api]
            if prefix and not path.startswith(prefix + "/"):
                raise ApiError(404, f"Not Found: {path}")
            found = discovery.match(verb, path[len(prefix):])
            if found is None:
                raise ApiError(404, f"Method not found: {verb} {path}")
            method_id, params, schema = found
            problems = [f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter.'
                        for name in query if name not in self.parameters[api].get(method_id, ())]
            if schema:
                problems += discovery.validate(schema, body if body is not None else {})
            elif body:
                problems += [f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.' for key in body]
            if problems:
                self.schema_rejections.append((method_id, problems))
                raise ApiError(400, " ".join(problems))
            params = [unquote(p) for p in params]
            fault = self.take_fault(("concurrent",), f"{verb} {path} {method_id}")
            if fault:
                self.add_member(self._key(method_id, params), fault["role"], fault["member"])
            handler = getattr(self, "m_" + method_id.replace(".", "_"), None)
            if handler is None:
                raise ApiError(501, f"{method_id} is not simulated", "UNIMPLEMENTED")
            return method_id, handler(*params, query=query, body=body or {})

    @staticmethod
    def _key(method_id, params):
        if method_id.startswith("storage."):
            return ("bucket", params[0])
        if method_id.startswith("cloudresourcemanager."):
            return ("project", params[0])
        return ("account", params[1])

    # IAM v1 service accounts --------------------------------------------------------------------
    def m_iam_projects_serviceAccounts_get(self, project, ref, query, body):
        return 200, copy.deepcopy(self._account(project, ref))

    def m_iam_projects_serviceAccounts_create(self, project, query, body):
        account_id = body.get("accountId") or ""
        if not ACCOUNT_ID.match(account_id):
            raise ApiError(400, f"Invalid account ID \"{account_id}\": it must be 6-30 characters, lowercase letters, "
                                "digits or hyphens, starting with a letter.")
        email = f"{account_id}@{project}.iam.gserviceaccount.com"
        if email in self.accounts:
            raise ApiError(409, f"Service account {account_id} already exists within project projects/{project}.")
        spec = body.get("serviceAccount") or {}
        unique_id = str(next(self._ids))
        account = {"name": f"projects/{project}/serviceAccounts/{email}", "projectId": project,
                   "uniqueId": unique_id, "email": email, "oauth2ClientId": unique_id,
                   "etag": "MDEwMjE5MjA="}
        for key in ("displayName", "description"):
            if spec.get(key):
                account[key] = spec[key]
        self.accounts[email] = account
        self.created[email] = time.monotonic()
        self.policies[("account", email)] = self._new_policy()
        return 200, copy.deepcopy(account)

    def m_iam_projects_serviceAccounts_patch(self, project, ref, query, body):
        account = self._account(project, ref)
        mask = [m.strip() for m in (body.get("updateMask") or "").split(",") if m.strip()]
        if not mask or any(m not in ("displayName", "description") for m in mask):
            raise ApiError(400, f"Invalid update mask: {body.get('updateMask')!r}.")
        for field in mask:
            account[field] = (body.get("serviceAccount") or {}).get(field, "")
        return 200, copy.deepcopy(account)

    def m_iam_projects_serviceAccounts_delete(self, project, ref, query, body):
        account = self._account(project, ref)
        del self.accounts[account["email"]]
        self.policies.pop(("account", account["email"]), None)
        return 200, {}

    def m_iam_projects_serviceAccounts_getIamPolicy(self, project, ref, query, body):
        account = self._account(project, ref, "iam.serviceAccounts.getIamPolicy")
        return 200, self._render(None, self._policy(("account", account["email"])))

    def m_iam_projects_serviceAccounts_setIamPolicy(self, project, ref, query, body):
        account = self._account(project, ref, "iam.serviceAccounts.setIamPolicy")
        return 200, self._set_policy(("account", account["email"]), body.get("policy") or {})

    # Cloud Resource Manager v1 ------------------------------------------------------------------
    def m_cloudresourcemanager_projects_getIamPolicy(self, project, query, body):
        return 200, self._render(None, self._policy(("project", project)))

    def m_cloudresourcemanager_projects_setIamPolicy(self, project, query, body):
        return 200, self._set_policy(("project", project), body.get("policy") or {})

    # Cloud Storage JSON API v1 ------------------------------------------------------------------
    def m_storage_buckets_get(self, bucket, query, body):
        # A bucket of another project answers 403 storage.buckets.get, not 404: the name is taken
        # (GoogleCloudPlatform/deploymentmanager-samples#151; wording of substratusai/runbooks#31).
        if bucket in self.foreign_buckets:
            raise ApiError(403, "The caller does not have storage.buckets.get access to the Google Cloud Storage "
                                "bucket. Permission 'storage.buckets.get' denied on resource (or it may not exist).")
        if bucket not in self.buckets:
            raise ApiError(404, "The specified bucket does not exist.")
        return 200, {"kind": "storage#bucket", "id": bucket, "name": bucket, "location": "US"}

    def m_storage_buckets_getIamPolicy(self, bucket, query, body):
        key = ("bucket", bucket)
        return 200, self._render(key, self._policy(key), storage=True)

    def m_storage_buckets_setIamPolicy(self, bucket, query, body):
        return 200, self._set_policy(("bucket", bucket), body, storage=True)


class _Handler(JsonHandler):
    sim: IamSimulator = None
    api = "iam"
    error_shapes = {"storage": "reason", "iam": "status", "resourcemanager": "status"}
    reasons_by_code = STORAGE_REASONS

    def _answer(self, verb, path, query, body):
        return self.sim.handle(self.api, verb, path, dict(parse_qsl(query, keep_blank_values=True)), body)


def main():
    sim = IamSimulator().serve()
    print(json.dumps(sim.urls), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
