# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""IAM v1 service accounts and the three IAM policies a workload identity needs, on a GcpSession.

Policies are changed read-modify-write with the etag that was read: a concurrent change makes the
write fail (409 ABORTED from IAM and Resource Manager, 412 from Cloud Storage), and the whole
read-modify-write is then repeated on the new policy, so nobody else's change is ever overwritten.
"""

from __future__ import annotations

from urllib.parse import quote

from ansible.module_utils.basic import env_fallback

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpApiError, GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.iam.policy import with_pairs

IAM_ENDPOINT = "https://iam.googleapis.com"
RESOURCEMANAGER_ENDPOINT = "https://cloudresourcemanager.googleapis.com"
STORAGE_ENDPOINT = "https://storage.googleapis.com"
POLICY_VERSION = 3  # read conditional bindings too, so that they are written back unchanged


def endpoint_specs():
    return dict(
        iam_endpoint=dict(type="str", default=IAM_ENDPOINT, fallback=(env_fallback, ["GCP_IAM_ENDPOINT"])),
        resourcemanager_endpoint=dict(type="str", default=RESOURCEMANAGER_ENDPOINT,
                                      fallback=(env_fallback, ["GCP_RESOURCEMANAGER_ENDPOINT"])),
        storage_endpoint=dict(type="str", default=STORAGE_ENDPOINT,
                              fallback=(env_fallback, ["GCP_STORAGE_ENDPOINT"])),
    )


def _root(endpoint, default):
    endpoint = (endpoint or default).rstrip("/")
    return endpoint if "://" in endpoint else "http://" + endpoint


def is_conflict(exc):
    """The policy changed since it was read (stale etag)."""
    return isinstance(exc, GcpApiError) and (exc.status == 412 or (exc.status == 409 and exc.reason == "ABORTED"))


def is_unknown_member(exc):
    """IAM has not yet propagated a service account created moments ago."""
    return isinstance(exc, GcpApiError) and exc.status == 400 and "does not exist" in (exc.api_message or "")


def is_not_visible_yet(exc):
    """IAM's answer for reading a service account (or its policy) it has not propagated yet: 403
    "Permission ... denied on resource (or it may not exist)" (terraform-provider-google retries it:
    IsForbiddenIamServiceAccountRetryableError; resource_google_service_account.go ignores 403 and 404
    while it polls after a create)."""
    return isinstance(exc, GcpApiError) and exc.status == 403 and "may not exist" in (exc.api_message or "")


class Target:
    """One IAM policy: a project, a bucket or a service account."""

    def __init__(self, kind, name, label):
        self.kind, self.name, self.label = kind, name, label

    def __repr__(self):
        return self.label


class IamClient:
    def __init__(self, session, iam_endpoint=None, resourcemanager_endpoint=None, storage_endpoint=None,
                 *, conflict_retries=5, propagation_retries=8):
        self.session = session
        self.iam = _root(iam_endpoint, IAM_ENDPOINT) + "/v1"
        self.crm = _root(resourcemanager_endpoint, RESOURCEMANAGER_ENDPOINT) + "/v1"
        self.storage = _root(storage_endpoint, STORAGE_ENDPOINT) + "/storage/v1"
        self.conflict_retries = conflict_retries
        self.propagation_retries = propagation_retries
        self.conflicts = 0  # stale-etag writes that were retried

    # --- service accounts ------------------------------------------------------------------------
    def _account_url(self, project, email):
        return f"{self.iam}/projects/{quote(project, safe='')}/serviceAccounts/{quote(email, safe='@')}"

    def get_account(self, project, email, created=False):
        """The account, or None. created: it was created moments ago, so wait while IAM has not
        propagated it (403/404) instead of answering None."""
        for attempt in range(self.propagation_retries + 1):
            try:
                account = self.session.json("GET", self._account_url(project, email), allow=(404,),
                                            context=f"service account {email}")
            except GcpApiError as exc:
                if not (created and is_not_visible_yet(exc)):
                    raise
                account = None
            if account is not None or not created or attempt == self.propagation_retries:
                return account
            self.session.backoff(attempt + 1)
        return None  # pragma: no cover

    def create_account(self, project, account_id, display_name):
        body = {"accountId": account_id, "serviceAccount": {}}
        if display_name:
            body["serviceAccount"]["displayName"] = display_name
        return self.session.json("POST", f"{self.iam}/projects/{quote(project, safe='')}/serviceAccounts",
                                 json=body, allow=(409,), context=f"create service account {account_id!r} in {project}")

    def patch_account(self, project, email, display_name):
        body = {"serviceAccount": {"displayName": display_name}, "updateMask": "displayName"}
        return self.session.json("PATCH", self._account_url(project, email), json=body,
                                 context=f"display name of service account {email}")

    def delete_account(self, project, email):
        return self.session.json("DELETE", self._account_url(project, email), allow=(404,),
                                 context=f"delete service account {email}")

    # --- policies --------------------------------------------------------------------------------
    @staticmethod
    def project_target(project):
        return Target("project", project, f"projects/{project}")

    @staticmethod
    def bucket_target(bucket):
        return Target("bucket", bucket, f"buckets/{bucket}")

    @staticmethod
    def account_target(project, email):
        return Target("account", (project, email), f"serviceAccounts/{email}")

    def get_policy(self, target, allow_missing=False):
        """The policy, or None when the resource does not exist and allow_missing."""
        allow = (404,) if allow_missing else ()
        context = f"IAM policy of {target.label}"
        if target.kind == "project":
            return self.session.json("POST", f"{self.crm}/projects/{quote(target.name, safe='')}:getIamPolicy",
                                     json={"options": {"requestedPolicyVersion": POLICY_VERSION}},
                                     allow=allow, context=context)
        if target.kind == "bucket":
            return self.session.json("GET", f"{self.storage}/b/{quote(target.name, safe='')}/iam",
                                     params={"optionsRequestedPolicyVersion": POLICY_VERSION},
                                     allow=allow, context=context)
        project, email = target.name
        return self.session.json("POST", self._account_url(project, email) + ":getIamPolicy",
                                 params={"options.requestedPolicyVersion": POLICY_VERSION},
                                 allow=allow, context=context)

    def set_policy(self, target, policy):
        context = f"set IAM policy of {target.label}"
        if target.kind == "project":
            return self.session.json("POST", f"{self.crm}/projects/{quote(target.name, safe='')}:setIamPolicy",
                                     json={"policy": policy}, context=context)
        if target.kind == "bucket":
            return self.session.json("PUT", f"{self.storage}/b/{quote(target.name, safe='')}/iam",
                                     json=policy, context=context)
        project, email = target.name
        return self.session.json("POST", self._account_url(project, email) + ":setIamPolicy",
                                 json={"policy": policy}, context=context)

    def converge(self, target, pairs, present, check_mode, *, missing_ok=False, new_members=False):
        """Add (present) or remove the (role, member) pairs on target's policy.

        Returns (before, after, changed pairs); before is None when the resource is missing and
        missing_ok. Stale-etag conflicts repeat the read-modify-write; with new_members, IAM's
        "does not exist" for a service account created moments ago is waited out the same way.
        """
        conflicts = propagation = 0
        while True:
            try:
                policy = self.get_policy(target, allow_missing=missing_ok or new_members)
            except GcpApiError as exc:
                if not (new_members and target.kind == "account" and is_not_visible_yet(exc)):
                    raise
                policy = None  # the account's own policy answers 403 until IAM has propagated it
            if policy is None and new_members and target.kind == "account" and propagation < self.propagation_retries:
                propagation += 1  # an account created moments ago may not be readable everywhere yet
                self.session.backoff(propagation)
                continue
            if policy is None:
                if not missing_ok:
                    raise GcpError(f"{target.label} does not exist (IAM answered 404 for its policy); re-run "
                                   "when a service account created moments ago has propagated")
                return None, None, []
            after, changed = with_pairs(policy, pairs, present)
            if not changed or check_mode:
                return policy, after, changed
            try:
                written = self.set_policy(target, after)
                return policy, written or after, changed
            except GcpApiError as exc:
                if is_conflict(exc) and conflicts < self.conflict_retries:
                    conflicts += 1
                    self.conflicts += 1
                    self.session.backoff(conflicts)
                    continue
                unseen = is_unknown_member(exc) or (target.kind == "account" and is_not_visible_yet(exc))
                if new_members and unseen and propagation < self.propagation_retries:
                    propagation += 1
                    self.session.backoff(propagation)
                    continue
                if is_conflict(exc):
                    raise GcpError(f"{exc} (the policy of {target.label} kept changing during "
                                   f"{conflicts + 1} read-modify-write attempts; re-run when the other "
                                   "writer has finished)") from exc
                raise
