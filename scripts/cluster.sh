#!/usr/bin/env bash
# A real single-node Kubernetes v1.20.2 cluster on this machine, from Debian packages only, for netmapper's
# cluster tests (tests/cluster) and for trying netmapper the way a user installs it.
#
#   scripts/cluster.sh start    build what is missing (cached), start every daemon, wait for the node: prints
#                               the admin kubeconfig path on stdout. Idempotent: a running cluster is reused.
#   scripts/cluster.sh stop     delete every pod (so kubelet runs CNI DEL), stop the daemons, remove all host
#                               state they leave (iptables chains, cni0, netns, mounts, cgroups, logs). Idempotent.
#   scripts/cluster.sh images   only (re)build and cache the container images.
#   scripts/cluster.sh status   exit 0 when the cluster answers.
#
# Pieces: etcd (Debian), kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (iptables
# mode) and kubectl built by scripts/kube-build.sh; containerd + runc + CNI bridge plugin (Debian); certificates
# made with openssl. No registry is reachable, so every image is built here with buildah (vfs): a pause image
# (Kubernetes' own pause.c), a Debian base from debootstrap imported as debian:bookworm-slim, the workload image
# (scripts/cluster/workload) and netmapper's image from deploy/Containerfile itself. Images and the Debian base
# are cached under $CACHE; containerd keeps its content store there too, so a warm start imports nothing.
# A cluster DNS of our own (scripts/cluster/workload/cluster_dns.py) runs as the kube-dns addon.
#
# Facts this relies on (../shared/ENVIRONMENT.md "A real cluster"): this VM drops CAP_SYS_RESOURCE even for root,
# so containerd must not ask runc for a negative oom_score_adj (restrict_oom_score_adj); no systemd, so cgroupfs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KUBE_CACHE="${NETMAPPER_KUBE_CACHE:-/var/cache/netmapper/kubernetes-v1.20.2}"
CACHE="${NETMAPPER_CLUSTER_CACHE:-/var/cache/netmapper/cluster}"
STATE="${NETMAPPER_CLUSTER_STATE:-/var/lib/netmapper-cluster}"
RUN_DIR=/run/netmapper-cluster
NODE_NAME=netmapper-node
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/12
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
API_PORT=6443
ETCD_PORT=12379
ETCD_PEER_PORT=12380
CTR_SOCK=$RUN_DIR/containerd/containerd.sock
CNI_CONF_DIR=$STATE/cni/net.d
# Image names: the overlay deploy/overlays/local-cluster and the tests use the same ones.
PAUSE_IMAGE=localhost/netmapper/pause:3.4.1
WORKLOAD_IMAGE=localhost/netmapper/workload:local
NETMAPPER_IMAGE=localhost/netmapper:local
BASE_IMAGE=docker.io/library/debian:bookworm-slim   # what `FROM debian:bookworm-slim` resolves to
BUILDAH=(buildah --root "$CACHE/buildah/root" --runroot "$RUN_DIR/buildah" --storage-driver vfs)
KUBECTL="$KUBE_CACHE/kubectl"
ADMIN_KUBECONFIG=$STATE/admin.kubeconfig
DAEMONS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { printf '[cluster.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
t_start=$(date +%s)

node_ip() { ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit }}'; }

source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

kubectl_admin() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# ---- images --------------------------------------------------------------------------------------------------

# Content hash of a build context (tracked + untracked-but-not-ignored files), so an image is rebuilt exactly
# when what goes into it changed.
# Top-level names listed in the context's .containerignore are not part of the image, so not of the hash either.
context_hash() {
    local dir=$1 skip='^$'
    if [[ -f $dir/.containerignore ]]; then
        skip=$(awk '!/^#/ && NF && $1 !~ /[*]/ { printf "%s^%s(/|$)", (n++ ? "|" : ""), $1 }' "$dir/.containerignore")
    fi
    (cd "$dir" && git ls-files -co --exclude-standard . | grep -vE "${skip:-^$}" | LC_ALL=C sort \
        | tr '\n' '\0' | xargs -0 sha256sum 2>/dev/null) | sha256sum | cut -c1-16
}

debian_base() {
    local tar=$CACHE/debian-bookworm-minbase.tar
    if [[ ! -f $tar ]]; then
        log "debootstrap --variant=minbase bookworm (a few minutes, once)"
        local dir
        dir=$(mktemp -d "$CACHE/rootfs.XXXXXX")
        debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 \
            || { tail -n 20 "$CACHE/debootstrap.log" >&2; rm -rf "$dir"; die "debootstrap failed"; }
        rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
        tar -C "$dir" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
        rm -rf "$dir"
    fi
    if ! "${BUILDAH[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
        log "importing the debootstrap base as $BASE_IMAGE"
        local c mnt
        c=$("${BUILDAH[@]}" from scratch)
        mnt=$("${BUILDAH[@]}" mount "$c")
        tar -C "$mnt" -xf "$tar"
        "${BUILDAH[@]}" umount "$c" >/dev/null
        "${BUILDAH[@]}" config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
        "${BUILDAH[@]}" commit -q --rm "$c" "$BASE_IMAGE" >/dev/null
    fi
}

# Build IMAGE into an OCI archive under $CACHE/images unless the archive for this context hash exists.
# $1 image name, $2 archive stem, $3 context dir, $4 Containerfile, $5 hash
build_image() {
    local image=$1 stem=$2 context=$3 file=$4 hash=$5
    local archive=$CACHE/images/$stem-$hash.tar
    if [[ -f $archive ]]; then echo "$archive"; return; fi
    debian_base
    log "building $image from $file (context $context, hash $hash)"
    # chroot isolation + host network: no nested runtime, and apt/pip inside reach Debian's archive and PyPI.
    # pip inside trusts what the host trusts (this machine reaches PyPI through a TLS proxy whose CA only the
    # host's bundle has): the host's CA bundle and a pip.conf naming it are mounted for RUN steps only.
    local pipconf=$CACHE/build-pip.conf
    printf '[global]\ncert = /run/netmapper-build/ca.crt\n' >"$pipconf"
    "${BUILDAH[@]}" bud -q --layers --pull-never --isolation chroot --network host \
        -v /etc/ssl/certs/ca-certificates.crt:/run/netmapper-build/ca.crt:ro -v "$pipconf:/etc/pip.conf:ro" \
        -f "$file" -t "$image" "$context" >&2
    rm -f "$CACHE/images/$stem"-*.tar
    "${BUILDAH[@]}" push -q "$image" "oci-archive:$archive.tmp:$image" >&2
    mv "$archive.tmp" "$archive"
    echo "$archive"
}

pause_image() {
    local archive=$CACHE/images/pause-3.4.1.tar
    if [[ ! -f $archive ]]; then
        [[ -x $KUBE_CACHE/pause ]] || die "no $KUBE_CACHE/pause: run scripts/kube-build.sh"
        log "building $PAUSE_IMAGE from Kubernetes' pause.c"
        local c
        c=$("${BUILDAH[@]}" from scratch)
        "${BUILDAH[@]}" copy -q "$c" "$KUBE_CACHE/pause" /pause >/dev/null
        "${BUILDAH[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$c"
        "${BUILDAH[@]}" commit -q --rm --format oci "$c" "$PAUSE_IMAGE" >/dev/null
        "${BUILDAH[@]}" push -q "$PAUSE_IMAGE" "oci-archive:$archive.tmp:$PAUSE_IMAGE" >&2
        mv "$archive.tmp" "$archive"
    fi
    echo "$archive"
}

# Every image archive, one per line (built when missing).
images() {
    mkdir -p "$CACHE/images" "$RUN_DIR"
    apt_install --no-install-recommends buildah debootstrap
    build_image "$WORKLOAD_IMAGE" workload "$ROOT/scripts/cluster/workload" \
        "$ROOT/scripts/cluster/workload/Containerfile" "$(context_hash "$ROOT/scripts/cluster/workload")"
    build_image "$NETMAPPER_IMAGE" netmapper "$ROOT" "$ROOT/deploy/Containerfile" "$(context_hash "$ROOT")"
    pause_image
}

# Import archives into containerd's k8s.io namespace; skip those already imported (containerd's store is cached).
import_images() {
    local archive stamp
    for archive in "$@"; do
        stamp=$CACHE/containerd/imported/$(basename "$archive")
        [[ -f $stamp ]] && continue
        log "importing $(basename "$archive") into containerd"
        ctr --address "$CTR_SOCK" -n k8s.io images import "$archive" >/dev/null
        mkdir -p "$(dirname "$stamp")" && touch "$stamp"
        echo "$archive"  # what was new
    done
}

# ---- certificates and configs --------------------------------------------------------------------------------

make_pki() {
    local pki=$STATE/pki ip=$1
    [[ -f $pki/.complete ]] && return
    rm -rf "$pki" && mkdir -p "$pki"
    # EC keys: each takes milliseconds where RSA takes a second.
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 30 \
        -subj "/CN=netmapper-cluster-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    # name  subject  extendedKeyUsage  subjectAltName
    local spec
    while IFS='|' read -r name subj eku san; do
        [[ -n $name ]] || continue
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "$subj" \
            -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
        spec="extendedKeyUsage=$eku
keyUsage=critical,digitalSignature,keyEncipherment"
        [[ -n $san ]] && spec+="
subjectAltName=$san"
        openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
            -extfile <(echo "$spec") -out "$pki/$name.crt" 2>/dev/null
        rm -f "$pki/$name.csr"
    done <<EOF
apiserver|/CN=kube-apiserver|serverAuth|IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,IP:$ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
apiserver-kubelet-client|/O=system:masters/CN=kube-apiserver-kubelet-client|clientAuth|
admin|/O=system:masters/CN=netmapper-admin|clientAuth|
kubelet|/O=system:nodes/CN=system:node:$NODE_NAME|clientAuth|
kubelet-serving|/CN=$NODE_NAME|serverAuth|IP:$ip,IP:127.0.0.1,DNS:$NODE_NAME
controller-manager|/CN=system:kube-controller-manager|clientAuth|
scheduler|/CN=system:kube-scheduler|clientAuth|
kube-proxy|/CN=system:kube-proxy|clientAuth|
EOF
    touch "$pki/.complete"
}

kubeconfig() {  # $1 file, $2 cert name, $3 server
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: netmapper
  cluster: {server: "$3", certificate-authority: "$STATE/pki/ca.crt"}
users:
- name: user
  user: {client-certificate: "$STATE/pki/$2.crt", client-key: "$STATE/pki/$2.key"}
contexts:
- name: netmapper
  context: {cluster: netmapper, user: user}
current-context: netmapper
EOF
}

write_configs() {
    local ip=$1 server="https://127.0.0.1:$API_PORT"
    # volumes/mapper-data: the local PersistentVolume of deploy/overlays/local-cluster
    mkdir -p "$STATE"/{etc,logs,kubelet} "$STATE/volumes/mapper-data" "$CNI_CONF_DIR" "$RUN_DIR/containerd" "$CACHE/containerd"
    kubeconfig "$ADMIN_KUBECONFIG" admin "$server"
    kubeconfig "$STATE/etc/controller-manager.kubeconfig" controller-manager "$server"
    kubeconfig "$STATE/etc/scheduler.kubeconfig" scheduler "$server"
    kubeconfig "$STATE/etc/kubelet.kubeconfig" kubelet "$server"
    kubeconfig "$STATE/etc/kube-proxy.kubeconfig" kube-proxy "$server"
    cat >"$STATE/etc/containerd.toml" <<EOF
version = 2
# The content store and snapshots live in the cache: images imported once survive stop/start.
root = "$CACHE/containerd/root"
state = "$RUN_DIR/containerd/state"
[grpc]
  address = "$CTR_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM drops CAP_SYS_RESOURCE even for root: runc cannot lower oom_score_adj, so never ask it to.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
EOF
    cat >"$CNI_CONF_DIR/10-netmapper.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "netmapper",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
    cat >"$STATE/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$STATE/pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$STATE/pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$STATE/pki/kubelet-serving.key"
cgroupDriver: cgroupfs          # no systemd on this machine
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: ["$DNS_SVC_IP"]
resolvConf: /etc/resolv.conf
# Images cannot be pulled again (no registry): never garbage-collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
EOF
    cat >"$STATE/etc/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: "$CLUSTER_CIDR"
hostnameOverride: "$NODE_NAME"
bindAddress: 0.0.0.0
metricsBindAddress: 127.0.0.1:10249
clientConnection: {kubeconfig: "$STATE/etc/kube-proxy.kubeconfig"}
# Leave the host's conntrack sysctls alone (a VM may not let us raise them).
conntrack: {maxPerCore: 0}
EOF
}

# ---- daemons -------------------------------------------------------------------------------------------------

pidfile() { echo "$RUN_DIR/$1.pid"; }

alive() {
    local pf
    pf=$(pidfile "$1")
    [[ -f $pf ]] && kill -0 "$(cat "$pf")" 2>/dev/null
}

spawn() {  # $1 name, rest argv: started in its own session, pid recorded, output to $STATE/logs/NAME.log
    local name=$1; shift
    alive "$name" && return
    setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$(pidfile "$name")"
}

wait_for() {  # $1 what, $2 seconds, rest: command that succeeds when ready
    local what=$1 secs=$2 i; shift 2
    for ((i = 0; i < secs * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "$what not ready after ${secs}s; last log lines:"
    tail -n 30 "$STATE/logs/${what%% *}.log" >&2 2>/dev/null || true
    return 1
}

start_daemons() {
    local ip=$1 pki=$STATE/pki
    # Pods need forwarding; remember what the host had so stop can put it back.
    [[ -f $RUN_DIR/ip_forward.orig ]] || cat /proc/sys/net/ipv4/ip_forward >"$RUN_DIR/ip_forward.orig"
    sysctl -qw net.ipv4.ip_forward=1
    modprobe br_netfilter 2>/dev/null || true
    sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true

    spawn etcd etcd --name "$NODE_NAME" --data-dir "$STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "$NODE_NAME=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync
    spawn containerd containerd --config "$STATE/etc/containerd.toml"
    wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

    spawn kube-apiserver "$KUBE_CACHE/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=0.0.0.0 --advertise-address="$ip" --secure-port=$API_PORT --insecure-port=0 \
        --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$pki/apiserver-kubelet-client.key" --kubelet-certificate-authority="$pki/ca.crt" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
        --kubelet-preferred-address-types=InternalIP,Hostname \
        --service-cluster-ip-range=$SERVICE_CIDR --allow-privileged=true --v=1
    wait_for "kube-apiserver" 60 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://127.0.0.1:$API_PORT/readyz"

    spawn kube-controller-manager "$KUBE_CACHE/kube-controller-manager" \
        --kubeconfig="$STATE/etc/controller-manager.kubeconfig" \
        --authentication-kubeconfig="$STATE/etc/controller-manager.kubeconfig" \
        --authorization-kubeconfig="$STATE/etc/controller-manager.kubeconfig" \
        --bind-address=127.0.0.1 --port=0 --leader-elect=false --use-service-account-credentials \
        --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
        --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
        --service-cluster-ip-range=$SERVICE_CIDR --cluster-cidr=$CLUSTER_CIDR --allocate-node-cidrs=false --v=1
    spawn kube-scheduler "$KUBE_CACHE/kube-scheduler" --kubeconfig="$STATE/etc/scheduler.kubeconfig" \
        --authentication-kubeconfig="$STATE/etc/scheduler.kubeconfig" \
        --authorization-kubeconfig="$STATE/etc/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --port=0 --leader-elect=false --v=1
    wait_for containerd 30 ctr --address "$CTR_SOCK" version
    spawn kubelet "$KUBE_CACHE/kubelet" --config="$STATE/etc/kubelet.yaml" \
        --kubeconfig="$STATE/etc/kubelet.kubeconfig" --root-dir="$STATE/kubelet" \
        --container-runtime=remote --container-runtime-endpoint="unix://$CTR_SOCK" \
        --runtime-request-timeout=10m --hostname-override=$NODE_NAME --node-ip="$ip" --v=1
    spawn kube-proxy "$KUBE_CACHE/kube-proxy" --config="$STATE/etc/kube-proxy.yaml" --v=1
}

node_ready() {
    [[ $(kubectl_admin get node $NODE_NAME -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

dns_addon() {
    kubectl_admin apply -f "$ROOT/scripts/cluster/dns-addon.yaml" >/dev/null
    kubectl_admin -n kube-system rollout status deployment/kube-dns --timeout=120s >&2
}

cmd_start() {
    local ip
    ip=$(node_ip)
    [[ -n $ip ]] || die "no IPv4 source address for the node (no default route?)"
    if alive kube-apiserver && alive kubelet && node_ready; then
        log "cluster already running; bringing its images up to date"
        mapfile -t archives < <(images)
        if [[ -n $(import_images "${archives[@]}") ]]; then
            kubectl_admin -n kube-system rollout restart deployment/kube-dns >/dev/null
        fi
        dns_addon
        echo "$ADMIN_KUBECONFIG"
        return
    fi
    apt_install --no-install-recommends etcd-server openssl containerd runc containernetworking-plugins iptables conntrack curl \
        buildah debootstrap
    [[ -x $KUBECTL && -x $KUBE_CACHE/kubelet ]] || bash "$ROOT/scripts/kube-build.sh"
    mapfile -t archives < <(images)
    make_pki "$ip"
    write_configs "$ip"
    start_daemons "$ip"
    import_images "${archives[@]}" >/dev/null
    wait_for kubelet 120 node_ready || die "node $NODE_NAME not Ready"
    # The default service account must exist before pods can be created in a namespace.
    wait_for kube-controller-manager 60 kubectl_admin -n default get serviceaccount default
    dns_addon
    # The real ClientIntents CRD, as netmapper ships it, so exported intents can be applied to this cluster.
    kubectl_admin apply -f "$ROOT/netmapper/intents/data/k8s.otterize.com_clientintents.yaml" >/dev/null
    kubectl_admin wait --for condition=established --timeout=60s crd/clientintents.k8s.otterize.com >/dev/null
    log "cluster up in $(($(date +%s) - t_start))s (kubeconfig $ADMIN_KUBECONFIG)"
    echo "$ADMIN_KUBECONFIG"
}

stop_pid() {  # $1 name; TERM, then KILL after 15 s, of the process group we started
    local pf pid i
    pf=$(pidfile "$1")
    [[ -f $pf ]] || return 0
    pid=$(cat "$pf")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 75; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pf"
}

cmd_stop() {
    local t0=$SECONDS
    if alive kube-apiserver && alive kubelet; then
        log "deleting every pod so kubelet tears their networks down (CNI DEL)"
        kubectl_admin delete namespace --wait=false \
            $(kubectl_admin get ns -o name | grep -vE '/(default|kube-system|kube-public|kube-node-lease)$' \
              | sed 's|namespace/||') >/dev/null 2>&1 || true
        kubectl_admin delete daemonsets,deployments,statefulsets,replicasets,jobs,cronjobs --all -A \
            --wait=false >/dev/null 2>&1 || true
        kubectl_admin delete pods --all -A --grace-period=1 --wait=false >/dev/null 2>&1 || true
        for ((i = 0; i < 60; i++)); do
            [[ -z $(kubectl_admin get pods -A -o name 2>/dev/null) ]] && break
            sleep 1
        done
    fi
    local d
    for d in kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver; do stop_pid "$d"; done
    # Whatever pod is left (a kubelet that died early): stop it through containerd so CNI DEL still runs.
    if alive containerd; then
        local c
        for c in $(ctr --address "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
            ctr --address "$CTR_SOCK" -n k8s.io tasks kill -s KILL "$c" >/dev/null 2>&1 || true
        done
        sleep 1
        for c in $(ctr --address "$CTR_SOCK" -n k8s.io containers ls -q 2>/dev/null); do
            ctr --address "$CTR_SOCK" -n k8s.io tasks delete "$c" >/dev/null 2>&1 || true
            ctr --address "$CTR_SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1 || true
        done
    fi
    stop_pid containerd
    stop_pid etcd
    # Shims outlive containerd by design; ours are children of the containerd we started (their -address says so).
    local pid
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTR_SOCK" || true); do kill -KILL "$pid" 2>/dev/null || true; done
    # Host state a cluster leaves behind.
    local m
    for m in $(awk '{print $2}' /proc/mounts | grep -E "^($STATE|$RUN_DIR|$CACHE/containerd/root/io.containerd.runtime|/run/netns/cni-)" | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns delete "$ns" 2>/dev/null || true; done
    ip link delete cni0 2>/dev/null || true
    local table chain
    for table in filter nat mangle; do
        for chain in $(iptables -t $table -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}'); do
            iptables -t $table -S 2>/dev/null | awk -v c="$chain" '$1 == "-A" && $0 ~ ("-j " c "( |$)") && $2 != c' \
                | sed 's/^-A/-D/' | while read -r rule; do eval iptables -t $table "$rule" 2>/dev/null || true; done
        done
        for chain in $(iptables -t $table -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}'); do
            iptables -t $table -F "$chain" 2>/dev/null || true
        done
        for chain in $(iptables -t $table -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}'); do
            iptables -t $table -X "$chain" 2>/dev/null || true
        done
    done
    local cg
    for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
        [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    rm -rf /var/log/pods /var/log/containers /var/lib/cni/networks/netmapper /var/lib/cni/results
    if [[ -f $RUN_DIR/ip_forward.orig ]]; then
        sysctl -qw net.ipv4.ip_forward="$(cat "$RUN_DIR/ip_forward.orig")" || true
    fi
    rm -rf "$STATE" "$RUN_DIR"
    log "stopped and cleaned up in $((SECONDS - t0))s"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    images) images ;;
    status) alive kube-apiserver && alive kubelet && node_ready ;;
    *) echo "usage: $0 start|stop|images|status" >&2; exit 2 ;;
esac
