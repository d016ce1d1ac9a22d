# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""gke_kubeconfig: merge one GKE context into a kubeconfig file, like `gcloud container clusters get-credentials`."""

from __future__ import annotations

import copy
import datetime
import os
import tempfile

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    HAS_YAML = False

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.redact import REDACTED

EXTENSION = "rapids.triton_fil"
# GKE names a Google identity by its e-mail only when the token carries this scope; a token with
# cloud-platform alone is a service account's numeric unique ID to RBAC (GKE docs, "Authorize actions in
# clusters using role-based access control"), so bindings by e-mail would not match it.
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
AUTH_PLUGIN = {
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "command": "gke-gcloud-auth-plugin",
    "installHint": "Install gke-gcloud-auth-plugin for use with kubectl by following "
                   "https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin",
    "provideClusterInfo": True,
    "interactiveMode": "IfAvailable",
}
# Credential fields of a kubeconfig user (client-go's clientcmd api.AuthInfo): redacted wherever a
# kubeconfig is shown. auth-provider.config holds access-token/refresh-token/id-token/client-secret;
# exec.env often carries credentials too; every value of both is redacted.
SECRET_USER_FIELDS = ("token", "password", "client-key-data")


def empty_config():
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [], "contexts": [], "users": [],
            "current-context": ""}


def load(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise GcpError(f"path {path!r} is not a readable kubeconfig ({exc}); fix or move it, it was not changed") from exc
    if data is None:
        return empty_config()
    if not isinstance(data, dict) or data.get("kind", "Config") != "Config":
        raise GcpError(f"path {path!r} is not a kubeconfig (kind: Config); point path at another file")
    return data


def _named(items, name):
    return next((i for i in items or [] if i.get("name") == name), None)


def _upsert(items, entry):
    for index, item in enumerate(items):
        if item.get("name") == entry["name"]:
            items[index] = entry
            return
    items.append(entry)


def token_expiry(user_entry):
    for ext in (user_entry or {}).get("user", {}).get("extensions", []) or []:
        if ext.get("name") == EXTENSION:
            value = (ext.get("extension") or {}).get("token-expiry")
            try:
                return datetime.datetime.fromisoformat(value) if value else None
            except ValueError:
                return None
    return None


def redact_user(user):
    """A kubeconfig `user` mapping with every credential replaced by REDACTED (the structure kept)."""
    if not isinstance(user, dict):
        return user
    clean = copy.deepcopy(user)
    for key in SECRET_USER_FIELDS:
        if key in clean:
            clean[key] = REDACTED
    provider = clean.get("auth-provider")
    if isinstance(provider, dict) and isinstance(provider.get("config"), dict):
        provider["config"] = {key: REDACTED for key in provider["config"]}
    exec_spec = clean.get("exec")
    if isinstance(exec_spec, dict) and isinstance(exec_spec.get("env"), list):
        exec_spec["env"] = [dict(e, value=REDACTED) if isinstance(e, dict) and "value" in e else e
                            for e in exec_spec["env"]]
    return clean


def redact(config):
    """The whole document with every user's credentials redacted."""
    if config is None:
        return None
    clean = copy.deepcopy(config)
    for user in clean.get("users", []) or []:
        if isinstance(user, dict) and "user" in user:
            user["user"] = redact_user(user["user"])
    return clean


def exec_plugin_entry(params, environ=None):
    """The exec entry: gke-gcloud-auth-plugin authenticating as the module's own credentials.

    Without --use_application_default_credentials the plugin asks gcloud's logged-in account (or fails where
    gcloud has none), not the credentials the module ran with (the plugin's --help: "Output is an
    ExecCredential filled with application default credentials"). A key file reaches the plugin as
    GOOGLE_APPLICATION_CREDENTIALS (ADC's first source), impersonation as --impersonate_service_account.
    """
    environ = os.environ if environ is None else environ
    kind = params.get("auth_kind") or "application"
    args = ["--use_application_default_credentials"]
    env = []
    if kind == "serviceaccount":
        if not params.get("service_account_file"):
            raise GcpError("auth=exec_plugin needs the key as a file (service_account_file): gke-gcloud-auth-plugin "
                           "reads credentials from a file, not from service_account_contents; or set auth=token")
        env.append({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": os.path.abspath(params["service_account_file"])})
    elif kind == "accesstoken":
        raise GcpError("auth=exec_plugin cannot hand an access token to gke-gcloud-auth-plugin: set auth=token "
                       "(the token is written into the kubeconfig), or use auth_kind application or serviceaccount")
    elif kind == "anonymous":
        raise GcpError("auth=exec_plugin needs Google credentials (auth_kind application or serviceaccount); "
                       "auth_kind anonymous has none")
    elif environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        # ADC from a key file now: the same file later, whatever the caller's environment then is.
        env.append({"name": "GOOGLE_APPLICATION_CREDENTIALS",
                    "value": os.path.abspath(environ["GOOGLE_APPLICATION_CREDENTIALS"])})
    if params.get("impersonate_service_account"):
        args.append(f"--impersonate_service_account={params['impersonate_service_account']}")
    entry = dict(AUTH_PLUGIN)
    entry["args"] = args
    if env:
        entry["env"] = env
    return entry


def managed_view(config, context):
    """Only what the module manages: the cluster, context and user named `context`, and current-context; redacted.

    Other users' entries (and their credentials) never appear in a diff, redacted or not.
    """
    if config is None:
        return None
    view = {}
    for key in ("clusters", "contexts", "users"):
        entry = _named(config.get(key), context)
        if entry is not None:
            view[key] = [entry]
    view["current-context"] = config.get("current-context", "")
    return redact(view)


def kubeconfig_diff(existing, new, context, path):
    """The Ansible diff of the managed entries, credentials redacted."""
    def dump(config):
        return yaml.safe_dump(managed_view(config, context), sort_keys=False) if config is not None else ""

    return {"before": dump(existing), "after": dump(new), "before_header": path, "after_header": path}


def build(existing, *, context, server, ca_data, auth, set_current, token_source=None, min_lifetime=900, now=None,
          exec_entry=None):
    """The new kubeconfig document; token_source() -> (token, expiry or None) is called only when needed."""
    config = copy.deepcopy(existing) if existing is not None else empty_config()
    for key in ("clusters", "contexts", "users"):
        config[key] = list(config.get(key) or [])
    _upsert(config["clusters"], {"name": context, "cluster": {"server": server, "certificate-authority-data": ca_data}})
    _upsert(config["contexts"], {"name": context, "context": {"cluster": context, "user": context}})
    if auth == "exec_plugin":
        _upsert(config["users"], {"name": context, "user": {"exec": dict(exec_entry or AUTH_PLUGIN)}})
    else:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        current = _named(config["users"], context)
        token = (current or {}).get("user", {}).get("token")
        expiry = token_expiry(current)
        keep = token and expiry is not None and expiry - now > datetime.timedelta(seconds=min_lifetime)
        new_token, new_expiry = token_source()
        if not new_token:
            raise GcpError("auth=token needs credentials that yield an access token (auth_kind anonymous does not)")
        if token == new_token:
            keep, new_expiry = True, expiry
        if not keep:
            token, expiry = new_token, new_expiry
        user = {"token": token}
        if expiry is not None:
            user["extensions"] = [{"name": EXTENSION, "extension": {"token-expiry": expiry.isoformat()}}]
        _upsert(config["users"], {"name": context, "user": user})
    if set_current:
        config["current-context"] = context
    return config


def write(path, config, mode=0o600):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, default_flow_style=False, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_kubeconfig(client, params, check_mode, diff=False):
    session = client.session
    if not HAS_YAML:
        raise GcpError("PyYAML is required on the host that runs gke_kubeconfig (pip install pyyaml)")
    project, location, cluster = params["project"], params["location"], params["cluster"]
    context = params["context"] or f"gke_{project}_{location}_{cluster}"
    server, ca_data = params.get("endpoint"), params.get("ca_certificate")
    if not (server and ca_data):
        if not project:
            raise GcpError("project is required to read the cluster's endpoint: set project (or GCP_PROJECT)")
        found = client.get_cluster(project, location, cluster)
        if found is None:
            raise GcpError(f"cluster {cluster!r} does not exist in {project}/{location}; create it first or fix "
                           "cluster/location")
        private = (found.get("privateClusterConfig") or {}).get("privateEndpoint")
        server = server or (private if params["use_private_endpoint"] else found.get("endpoint"))
        ca_data = ca_data or (found.get("masterAuth") or {}).get("clusterCaCertificate")
        if not server:
            raise GcpError(f"cluster {cluster!r} has no {'private ' if params['use_private_endpoint'] else ''}"
                           "endpoint yet; wait until it is RUNNING")
    if not server.startswith("https://"):
        server = f"https://{server}"
    path = params["path"]
    existing = load(path)

    def token_source():
        token = session.token()
        expiry = getattr(session.credentials, "expiry", None)
        if expiry is not None and expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=datetime.timezone.utc)
        return token, expiry

    exec_entry = exec_plugin_entry(params) if params["auth"] == "exec_plugin" else None
    new = build(existing, context=context, server=server, ca_data=ca_data, auth=params["auth"],
                set_current=params["set_current_context"], token_source=token_source,
                min_lifetime=params["min_token_lifetime"], exec_entry=exec_entry)
    mode_ok = existing is None or (os.stat(path).st_mode & 0o777) == 0o600
    changed = new != existing or not mode_ok
    if changed and not check_mode:
        write(path, new)
    result = {"changed": changed, "path": path, "context": context, "server": server, "auth": params["auth"]}
    if diff:  # only with --diff: a registered result must not carry the file's content
        result["diff"] = kubeconfig_diff(existing, new, context, path)
    return result
