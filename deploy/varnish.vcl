# Varnish in front of feedcast, purged by cache tag.
#
# Tested with Varnish 7.1 and the xkey vmod of Debian's varnish-modules 0.20 (tests/varnish.rs
# runs this file with only the backend's port changed). See docs/DEPLOY.md.
#
# feedcast names each feed response's cache tags in `Surrogate-Key` (feed:<path>,
# feed:<path>/<YYYY-MM>, a:<id>, feeds); here they become the `xkey` header the xkey vmod reads.
# On every change feedcast sends `PURGE /` with the tags to purge in `xkey-purge` (its
# `[[purgers]] kind = "varnish"`), which this file hands to xkey.purge(): a hard purge, gone at
# once with its grace, so no taken-down item is ever served again from here (xkey.softpurge
# would keep it in grace and serve it while revalidating).

vcl 4.1;

import std;
import xkey;

backend feedcast {
    .host = "127.0.0.1";
    .port = "8080";
    .probe = {
        .url = "/healthz";
        .interval = 1s;
        .timeout = 1s;
        .window = 2;
        .threshold = 1;
    }
}

# Who may purge: feedcast's replicas. Add their addresses.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (!req.http.xkey-purge) {
            return (synth(400, "No xkey-purge header"));
        }
        set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        return (synth(200, "Purged " + req.http.n-gone));
    }
    # The admin API is never cached, nor anything but reading.
    if (req.url ~ "^/api/" || (req.method != "GET" && req.method != "HEAD")) {
        return (pass);
    }
    # Back from vcl_hit: the copy was stale past stale-while-revalidate while feedcast is up.
    if (req.restarts > 0) {
        set req.hash_always_miss = true;
    }
}

sub vcl_hit {
    # A stale copy is served for as long as its grace, which is stale-if-error (see below), only
    # while feedcast is down; while it is up, only within stale-while-revalidate, as RFC 5861
    # says. Past that, fetch a fresh one.
    if (obj.ttl < 0s && std.healthy(req.backend_hint)
            && obj.ttl + std.duration(obj.http.x-stale-while-revalidate + "s", 0s) < 0s) {
        return (restart);
    }
}

sub vcl_backend_response {
    set beresp.http.xkey = beresp.http.Surrogate-Key;
    # Varnish 7.1 sets grace from stale-while-revalidate alone: make it stale-if-error, and keep
    # stale-while-revalidate for vcl_hit.
    set beresp.http.x-stale-while-revalidate = "0";
    if (beresp.http.Cache-Control ~ "stale-while-revalidate=[0-9]+") {
        set beresp.http.x-stale-while-revalidate = regsub(beresp.http.Cache-Control,
            "^.*stale-while-revalidate=([0-9]+).*$", "\1");
    }
    if (beresp.http.Cache-Control ~ "stale-if-error=[0-9]+") {
        set beresp.grace = std.duration(regsub(beresp.http.Cache-Control,
            "^.*stale-if-error=([0-9]+).*$", "\1") + "s", 0s);
    } else {
        set beresp.grace = 0s;
    }
}

sub vcl_deliver {
    # Tags and bookkeeping are for this cache only.
    unset resp.http.xkey;
    unset resp.http.x-stale-while-revalidate;
    unset resp.http.Surrogate-Key;
    unset resp.http.Cache-Tag;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
