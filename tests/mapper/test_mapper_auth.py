"""Authentication and roles on a real TLS gRPC mapper: tokens, client certificates, node binding,
refusals that change nothing and are counted, credential files reloaded when they change."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mapper.auth import ReloadingTls, ReloadingTokens
from mapper.server import MapperServer, serve
from netmapper_api.channel import ClientCredentials, open_channel
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import mapper_pb2, mapper_pb2_grpc
from edge_testing import edge, summary, workload
from tests.mapper.tls_files import Ca, make_ca

REPORTER = "report-token-0123456789"
NODE_A = "node-a-token-0123456789"
READER = "read-token-0123456789ab"
ADMIN = "admin-token-0123456789a"
TOKENS = (f"{REPORTER},sniffer,report\n{NODE_A},sniffer-a,report,node-a\n"
          f"{READER},alice,read\n{ADMIN},root,read|admin\n")


@pytest.fixture()
def pki(tmp_path: Path) -> Ca:
    ca = make_ca(tmp_path / "pki")
    ca.issue("server", "/CN=mapper", server=True)
    return ca


@pytest.fixture()
def mapper(tmp_path: Path, pki: Ca) -> Iterator[MapperServer]:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(TOKENS)
    tls = ReloadingTls(pki.dir / "server.crt", pki.dir / "server.key", client_ca=None)
    server = serve("127.0.0.1:0", tls=tls, tokens=ReloadingTokens(tokens))
    yield server
    server.stop(grace=0)


def stub(server: MapperServer, pki: Ca, token: str = "", **kw: Path) -> tuple[grpc.Channel, mapper_pb2_grpc.MapperStub]:
    creds = ClientCredentials(token=token, ca=kw.get("ca", pki.cert), cert=kw.get("cert"), key=kw.get("key"))
    ch = open_channel(server.address, creds, client_channel_options())
    return ch, mapper_pb2_grpc.MapperStub(ch)


def report(st: mapper_pb2_grpc.MapperStub, node: str, name: str = "web") -> list[mapper_pb2.ReportEdgesResponse]:
    req = mapper_pb2.ReportEdgesRequest(node=node, sequence=1, edges=[edge(workload(name), workload("db"), 5432)])
    return list(st.ReportEdges(iter([req]), timeout=10))


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()  # type: ignore[no-any-return,attr-defined]


def test_each_role_reaches_its_rpcs_only_and_refusals_change_nothing(mapper: MapperServer, pki: Ca) -> None:
    _, reporter = stub(mapper, pki, REPORTER)
    _, reader = stub(mapper, pki, READER)
    _, admin = stub(mapper, pki, ADMIN)
    _, anonymous = stub(mapper, pki)
    _, forged = stub(mapper, pki, "not-a-token-at-all-xx")

    assert [a.accepted for a in report(reporter, "node-x")] == [1]
    listed = reader.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10).edges
    assert [summary(e) for e in listed] == [("web.shop", "db.shop", 5432)]

    # No or unknown credential: UNAUTHENTICATED, for every RPC.
    for st in (anonymous, forged):
        assert code_of(lambda: report(st, "node-x", "attacker")) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: st.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10)) == \
            grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: st.ResetEdges(mapper_pb2.ResetEdgesRequest(), timeout=10)) == \
            grpc.StatusCode.UNAUTHENTICATED
    # Valid credential, wrong role: PERMISSION_DENIED.
    assert code_of(lambda: report(reader, "node-x", "attacker")) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: reader.ResetEdges(mapper_pb2.ResetEdgesRequest(), timeout=10)) == \
        grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: reporter.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10)) == \
        grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: reporter.ResetEdges(mapper_pb2.ResetEdgesRequest(), timeout=10)) == \
        grpc.StatusCode.PERMISSION_DENIED

    # Nothing refused reached the store; every refusal was counted.
    listed = admin.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10).edges
    assert [summary(e) for e in listed] == [("web.shop", "db.shop", 5432)]
    stats = mapper.auth_stats
    assert stats is not None
    assert stats.total("UNAUTHENTICATED") == 6
    assert stats.total("PERMISSION_DENIED") == 4
    assert admin.ResetEdges(mapper_pb2.ResetEdgesRequest(), timeout=10).removed == 1


def test_node_bound_token_cannot_report_for_another_node(mapper: MapperServer, pki: Ca) -> None:
    _, node_a = stub(mapper, pki, NODE_A)
    assert [a.accepted for a in report(node_a, "node-a")] == [1]
    assert code_of(lambda: report(node_a, "node-b", "attacker")) == grpc.StatusCode.PERMISSION_DENIED
    assert [summary(e) for e in mapper.store.list()] == [("web.shop", "db.shop", 5432)]
    assert mapper.store.list()[0].reporting_nodes == ["node-a"]


def test_health_stays_open_without_credentials(mapper: MapperServer, pki: Ca) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    ch, _ = stub(mapper, pki)
    status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_plaintext_client_cannot_talk_to_the_tls_port(mapper: MapperServer) -> None:
    with grpc.insecure_channel(mapper.address) as ch:
        st = mapper_pb2_grpc.MapperStub(ch)
        assert code_of(lambda: st.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=5)) == \
            grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_roles_come_from_the_certificate(tmp_path: Path, pki: Ca) -> None:
    sniffer_cert = pki.issue("sniffer-w1", "/O=report/CN=node:w1")
    reader_cert = pki.issue("reader", "/O=read/CN=alice")
    tls = ReloadingTls(pki.dir / "server.crt", pki.dir / "server.key", client_ca=pki.cert)
    server = serve("127.0.0.1:0", tls=tls)
    try:
        _, sniffer = stub(server, pki, cert=sniffer_cert[0], key=sniffer_cert[1])
        _, reader = stub(server, pki, cert=reader_cert[0], key=reader_cert[1])
        _, anonymous = stub(server, pki)
        assert [a.accepted for a in report(sniffer, "w1")] == [1]
        assert code_of(lambda: report(sniffer, "w2", "attacker")) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda: report(reader, "w1", "attacker")) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda: sniffer.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10)) == \
            grpc.StatusCode.PERMISSION_DENIED
        # Without a client certificate the TLS handshake itself fails.
        assert code_of(lambda: anonymous.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=5)) == \
            grpc.StatusCode.UNAVAILABLE
        assert [summary(e) for e in reader.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10).edges] == \
            [("web.shop", "db.shop", 5432)]
    finally:
        server.stop(grace=0)


def test_token_file_is_reloaded_when_it_changes(mapper: MapperServer, pki: Ca, tmp_path: Path) -> None:
    _, old = stub(mapper, pki, READER)
    old.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10)
    rotated = "rotated-read-token-0123456"
    # A Secret update replaces the file (kubelet swaps a symlink): write aside, rename over.
    staged = tmp_path / "tokens.new"
    staged.write_text(TOKENS.replace(READER, rotated))
    os.replace(staged, tmp_path / "tokens.csv")
    _, new = stub(mapper, pki, rotated)
    assert len(new.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10).edges) == 0
    assert code_of(lambda: old.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10)) == \
        grpc.StatusCode.UNAUTHENTICATED
    # A broken file keeps the tokens in force.
    staged.write_text("this is not,a token file\n")
    os.replace(staged, tmp_path / "tokens.csv")
    assert len(new.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10).edges) == 0


def test_server_certificate_is_reloaded_when_its_files_change(mapper: MapperServer, pki: Ca, tmp_path: Path) -> None:
    _, before = stub(mapper, pki, READER)
    before.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10)
    new_ca = make_ca(tmp_path / "pki2", "newca")
    crt, key = new_ca.issue("server", "/CN=mapper", server=True)
    for src, dst in ((crt, pki.dir / "server.crt"), (key, pki.dir / "server.key")):
        shutil.copy(src, dst.with_suffix(".tmp"))
        os.replace(dst.with_suffix(".tmp"), dst)
    # A new connection trusting only the new CA succeeds: the handshake used the reloaded certificate.
    _, after = stub(mapper, pki, READER, ca=new_ca.cert)
    assert len(after.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10).edges) == 0
    _, stale = stub(mapper, pki, READER, ca=pki.cert)
    assert code_of(lambda: stale.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=5)) == grpc.StatusCode.UNAVAILABLE


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netmapper.cli.main", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_cli_takes_token_file_ca_and_environment(mapper: MapperServer, pki: Ca, tmp_path: Path) -> None:
    token_file = tmp_path / "read.token"
    token_file.write_text(READER + "\n")
    _, reporter = stub(mapper, pki, REPORTER)
    report(reporter, "node-x")
    ok = cli("edges", "--mapper", mapper.address, "--ca", str(pki.cert), "--token-file", str(token_file))
    assert ok.returncode == 0, ok.stderr
    assert "shop/web" in ok.stdout and "shop/db" in ok.stdout
    env = cli("edges", "--mapper", mapper.address, "--ca", str(pki.cert), env={"NETMAPPER_TOKEN": READER})
    assert env.returncode == 0 and "shop/web" in env.stdout
    for args, code in (((), "UNAUTHENTICATED"), (("--token-file", str(token_file)), "PERMISSION_DENIED")):
        refused = cli("reset", "--mapper", mapper.address, "--ca", str(pki.cert), *args)
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1 and code in refused.stderr and "Traceback" not in refused.stderr
    missing = cli("edges", "--mapper", mapper.address, "--token-file", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "nope" in missing.stderr and "Traceback" not in missing.stderr
    assert len(mapper.store) == 1


def test_deploy_secrets_script_makes_credentials_the_mapper_and_cli_accept(tmp_path: Path, unavailable) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("kubectl") is None:
        unavailable("NETMAPPER_REQUIRE_TOOLS", "kubectl not installed (deploy-secrets.sh renders Secrets with it)")
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "secrets"
    subprocess.run(["bash", str(root / "scripts" / "deploy-secrets.sh"), str(out)], check=True, capture_output=True)
    tls = ReloadingTls(out / "tls.crt", out / "tls.key")
    server = serve("127.0.0.1:0", tls=tls, tokens=ReloadingTokens(out / "tokens.csv"), health_listen="127.0.0.1:0")
    try:
        sniffer_token = (out / "sniffer.token").read_text().strip()
        _, sniffer = stub(server, Ca(out, "ca"), sniffer_token)
        assert [a.accepted for a in report(sniffer, "node-1")] == [1]
        base = ("--mapper", server.address, "--ca", str(out / "ca.crt"))
        listed = cli("edges", *base, "--token-file", str(out / "reader.token"))
        assert listed.returncode == 0 and "shop/web" in listed.stdout, listed.stderr
        assert cli("reset", *base, "--token-file", str(out / "reader.token")).returncode == 1
        assert cli("reset", *base, "--token-file", str(out / "admin.token")).returncode == 0
        assert len(server.store) == 0
    finally:
        server.stop(grace=0)


def test_running_without_auth_warns_unless_only_loopback_listens(caplog: pytest.LogCaptureFixture) -> None:
    for listen, warned in (("127.0.0.1:0", False), ("0.0.0.0:0", True)):
        caplog.clear()
        server = serve(listen)
        server.stop(grace=0)
        assert any("no authentication" in r.getMessage() for r in caplog.records) == warned, listen


def test_sniffer_reporter_sends_large_batches_in_pieces_with_its_token(mapper: MapperServer, pki: Ca,
                                                                       tmp_path: Path) -> None:
    from sniffer.reporter import Reporter

    token_file = tmp_path / "sniffer.token"
    token_file.write_text(NODE_A + "\n")
    reporter = Reporter(mapper.address, "node-a", credentials=ClientCredentials(token_file=token_file, ca=pki.cert))
    reporter.start()
    try:
        edges = [edge(workload(f"c{i % 50}"), workload(f"s{i // 50}"), 1 + i % 7) for i in range(12_000)]
        assert reporter.offer(edges)
        assert not reporter.offer(edges[:1])  # busy until all pieces are acknowledged
        assert reporter.flush(timeout=120), reporter.stats
    finally:
        reporter.stop()
    assert len(mapper.store) == 12_000
    assert reporter.stats.batches_acked == 3  # 5000 + 5000 + 2000 edges
    assert reporter.stats.edges_acked == 12_000


def test_methods_without_a_listed_role_are_closed() -> None:
    from mapper.auth import role_for

    assert role_for("/netmapper.v1.Mapper/ReportEdges") == "report"
    assert role_for("/netmapper.v1.Mapper/WatchEdges") == "read"  # read-named RPCs need `read`
    assert role_for("/netmapper.v1.Mapper/DeleteEdges") is None  # a writing RPC stays closed until listed
    assert role_for("/grpc.health.v1.Health/Check") == ""
    assert role_for("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") == "read"


@pytest.mark.parametrize("text, problem", [
    ("short,alice,read\n", "shorter than 16"),
    ("0123456789abcdefgh,alice,write\n", "roles must be some of"),
    ("0123456789abcdefgh,,read\n", "empty name"),
    ("0123456789abcdefgh,alice,read\n0123456789abcdefgh,bob,admin\n", "listed twice"),
    ("# comment\n\n0123456789abcdefgh,alice\n", ":3: expected TOKEN,NAME,ROLES"),
])
def test_token_file_errors_name_the_line(text: str, problem: str) -> None:
    from mapper.auth import AuthConfigError, parse_token_file

    with pytest.raises(AuthConfigError, match=problem):
        parse_token_file(text, "tokens.csv")


def test_durations_read_like_kubectl() -> None:
    import argparse

    from netmapper.cli.mapper_serve import duration

    assert [duration(t) for t in ("90", "90s", "15m", "24h", "7d", "1h30m", "500ms")] == \
        [90, 90, 900, 86400, 604800, 5400, 0.5]
    for bad in ("", "5x", "-1s", "0", "1h 30m"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)


def test_a_revoked_token_stops_an_open_stream_at_its_next_batch(mapper: MapperServer, pki: Ca, tmp_path: Path) -> None:
    _, sniffer = stub(mapper, pki, REPORTER)
    second_batch = threading.Event()

    def batches() -> Iterator[mapper_pb2.ReportEdgesRequest]:
        yield mapper_pb2.ReportEdgesRequest(node="n", sequence=1, edges=[edge(workload("web"), workload("db"))])
        second_batch.wait(30)
        yield mapper_pb2.ReportEdgesRequest(node="n", sequence=2, edges=[edge(workload("web"), workload("evil"))])

    stream = sniffer.ReportEdges(batches(), timeout=30)
    assert next(stream).accepted == 1
    staged = tmp_path / "tokens.new"
    staged.write_text(TOKENS.replace(f"{REPORTER},sniffer,report\n", ""))
    os.replace(staged, tmp_path / "tokens.csv")
    second_batch.set()
    with pytest.raises(grpc.RpcError) as refused:
        next(stream)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert [summary(e) for e in mapper.store.list()] == [("web.shop", "db.shop", 8080)]


def test_refused_calls_are_counted_in_the_metrics(tmp_path: Path, pki: Ca) -> None:
    """What operators alert on (a forged or revoked credential hammering the port) is scraped, by code and method."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    tokens = tmp_path / "tokens.csv"
    tokens.write_text(TOKENS)
    server = serve("127.0.0.1:0", tls=ReloadingTls(pki.dir / "server.crt", pki.dir / "server.key", client_ca=None),
                   tokens=ReloadingTokens(tokens), metrics_listen="127.0.0.1:0")
    try:
        _, forged = stub(server, pki, "not-a-token-at-all-xx")
        _, reader = stub(server, pki, READER)
        for _ in range(3):
            code_of(lambda: forged.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10))
        code_of(lambda: reader.ResetEdges(mapper_pb2.ResetEdgesRequest(), timeout=10))
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for fam in text_string_to_metric_families(text) for s in fam.samples}
        assert samples[("netmapper_mapper_auth_refused_total",
                        (("code", "UNAUTHENTICATED"), ("method", "/netmapper.v1.Mapper/ListEdges")))] == 3
        assert samples[("netmapper_mapper_auth_refused_total",
                        (("code", "PERMISSION_DENIED"), ("method", "/netmapper.v1.Mapper/ResetEdges")))] == 1
    finally:
        server.stop(grace=0)
