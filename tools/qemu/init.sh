#!/bin/sh
# /init of the vhostlab QEMU interop guest (busybox sh; packed by tools/qemu/prepare_guest.sh).
#
# Drives traffic through every virtio-net interface and reports what the driver counted, for
# tools/qemu/qemu_interop.py to check. The backend under test echoes each TX frame to the RX
# queue of the same pair, so every frame the guest sends must come back: after a settle,
# tx_packets == rx_packets on each interface.
#
# Steps: mount proc/sys/dev; insmod the modules listed in /lib/modules/load-order (dependencies
# first); give each virtio-net interface k the address 169.254.(10+k).1/24 and a permanent ARP
# entry for the fake neighbour .2, so no ARP request goes out (and ipv6.disable=1 on the command
# line keeps IPv6 quiet): only our pings flow. Ping that neighbour (no replies come: the echo is
# our own request, addressed to the neighbour's MAC), wait for tx == rx, print the results.
#
# Restart: `ip link set down/up` alone does not reach the device (virtio-net's ndo_stop only
# parks NAPI; QEMU keeps vhost running), so the restart also unbinds and rebinds the driver: that
# resets the device, QEMU stops vhost (GET_VRING_BASE) and starts it again on new rings.
#
# Parameters, from the kernel command line (defaults in brackets):
#   vl.pings=N      echo requests per flow per round [20]
#   vl.interval=S   seconds between requests; busybox ping takes fractions [0.05]
#   vl.flows=N      concurrent ping processes, flow i pinned to CPU i mod ncpus, so that XPS
#                   (virtio-net maps CPU i to TX queue i) spreads them over the queue pairs [1]
#   vl.restart=1    after the first round: link down/up, driver unbind/bind, a second round [0]
#
# Output, one line each, for the driver to parse (everything else is for people):
#   VLINFO key=value ...                      facts: modules, interfaces, IOMMU group and type
#   VLERROR text                              a setup step failed (the run is not valid)
#   VLROUND round=R iface=I tx_packets=.. rx_packets=.. tx_bytes=.. rx_bytes=.. settled=0|1
#   VLRESULT iface=I tx_packets=.. rx_packets=.. tx_bytes=.. rx_bytes=.. rounds=R
#                                             totals over the rounds (a rebind zeroes the counters)
#   VLBEGIN dmesg / VLEND dmesg               between them, the dmesg lines about DMAR, virtio,
#                                             the IOMMU, TX watchdogs and kernel bugs
#   VLDONE                                    last line before poweroff: /init ran to the end
# Then `poweroff -f`. If /init dies first, the kernel panics and panic=-1 ends the run.

/bin/busybox mkdir -p /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Console: warnings and worse only (DMAR faults are errors, TX timeouts warnings), so that kernel
# lines do not split the VL* lines printed below; the full log is in the dmesg dump at the end.
dmesg -n 5

# Kernel command line parameter $1 (vl.NAME=VALUE), or $2.
param() {
  v=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^vl\.$1=//p" | tail -n1)
  echo "${v:-$2}"
}
pings=$(param pings 20)
interval=$(param interval 0.05)
flows=$(param flows 1)
restart=$(param restart 0)
size=$(param size 56)
mtu=$(param mtu 1500)
ncpus=$(grep -c '^processor' /proc/cpuinfo)
echo "VLINFO pings=$pings interval=$interval flows=$flows restart=$restart size=$size mtu=$mtu cpus=$ncpus"

loaded=""
while read -r m; do
  [ -n "$m" ] || continue
  if insmod "/lib/modules/$m.ko"; then loaded="$loaded,$m"; else echo "VLERROR insmod $m failed"; fi
done </lib/modules/load-order
echo "VLINFO modules=${loaded#,}"

# The virtio-net interfaces, by name, in a stable order.
virtio_ifaces() {
  for d in /sys/class/net/*; do
    case "$(readlink "$d/device/driver" 2>/dev/null)" in
      */virtio_net) echo "${d##*/}" ;;
    esac
  done
}

wait_for_ifaces() {
  i=0
  while [ -z "$(virtio_ifaces)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
}

configure() {
  k=0
  for ifc in $(virtio_ifaces); do
    net=169.254.$((10 + k))
    ip addr show dev "$ifc" | grep -q "inet $net.1/" ||
      ip addr add "$net.1/24" dev "$ifc" || echo "VLERROR cannot add $net.1/24 to $ifc"
    ip link set "$ifc" mtu "$mtu" || echo "VLERROR cannot set mtu $mtu on $ifc"
    ip link set "$ifc" up || echo "VLERROR cannot set $ifc up"
    # Permanent, so the kernel never ARPs for it (busybox ip has no `neigh add`).
    arp -i "$ifc" -s "$net.2" 02:00:00:00:00:02 || echo "VLERROR cannot add the neighbour on $ifc"
    k=$((k + 1))
  done
}

stat_of() { cat "/sys/class/net/$1/statistics/$2"; }

# One round: $flows ping processes per interface, then wait (at most 3 s) until tx == rx.
round() {
  r=$1
  k=0
  pids=""
  for ifc in $(virtio_ifaces); do
    f=0
    while [ "$f" -lt "$flows" ]; do
      taskset -c $((f % ncpus)) ping -q -c "$pings" -s "$size" -i "$interval" -W 1 \
        "169.254.$((10 + k)).2" 2>&1 &
      pids="$pids $!"
      f=$((f + 1))
    done
    k=$((k + 1))
  done
  for p in $pids; do wait "$p"; done
  for ifc in $(virtio_ifaces); do
    settled=0
    i=0
    while [ $i -lt 30 ]; do
      if [ "$(stat_of "$ifc" tx_packets)" = "$(stat_of "$ifc" rx_packets)" ]; then
        settled=1
        break
      fi
      sleep 0.1
      i=$((i + 1))
    done
    tp=$(stat_of "$ifc" tx_packets); rp=$(stat_of "$ifc" rx_packets)
    tb=$(stat_of "$ifc" tx_bytes); rb=$(stat_of "$ifc" rx_bytes)
    echo "VLROUND round=$r iface=$ifc tx_packets=$tp rx_packets=$rp tx_bytes=$tb" \
         "rx_bytes=$rb settled=$settled"
    # Totals over rounds, kept in files: a rebind zeroes the interface's own counters.
    echo "$tp $rp $tb $rb" >>"/tmp/totals.$ifc"
  done
}

info_ifaces() {
  for ifc in $(virtio_ifaces); do
    dev=$(readlink -f "/sys/class/net/$ifc/device")
    grp=$(readlink "$dev/../iommu_group" 2>/dev/null)
    grp=${grp##*/}
    typ=$(cat "/sys/kernel/iommu_groups/$grp/type" 2>/dev/null)
    txq=$(find "/sys/class/net/$ifc/queues" -maxdepth 1 -name 'tx-*' | wc -l)
    rxq=$(find "/sys/class/net/$ifc/queues" -maxdepth 1 -name 'rx-*' | wc -l)
    echo "VLINFO iface=$ifc virtio=${dev##*/} pci=$(basename "$(readlink -f "$dev/..")")" \
         "iommu_group=${grp:-none} iommu_type=${typ:-none} tx_queues=$txq rx_queues=$rxq"
  done
}

wait_for_ifaces
configure
info_ifaces
sleep 0.2
round 1

if [ "$restart" = 1 ]; then
  for ifc in $(virtio_ifaces); do ip link set "$ifc" down; done
  sleep 0.2
  for ifc in $(virtio_ifaces); do ip link set "$ifc" up; done
  configure
  for ifc in $(virtio_ifaces); do
    dev=$(basename "$(readlink -f "/sys/class/net/$ifc/device")")
    echo "$dev" >/sys/bus/virtio/drivers/virtio_net/unbind || echo "VLERROR cannot unbind $dev"
    echo "$dev" >/sys/bus/virtio/drivers/virtio_net/bind || echo "VLERROR cannot bind $dev"
    echo "VLINFO rebound=$dev"
  done
  wait_for_ifaces
  configure
  info_ifaces
  sleep 0.2
  round 2
fi

for ifc in $(virtio_ifaces); do
  awk -v ifc="$ifc" '{ tp += $1; rp += $2; tb += $3; rb += $4; n++ }
    END { printf "VLRESULT iface=%s tx_packets=%d rx_packets=%d tx_bytes=%d rx_bytes=%d",
                 ifc, tp, rp, tb, rb
          printf " rounds=%d\n", n }' "/tmp/totals.$ifc"
done
echo "VLBEGIN dmesg"
dmesg | grep -iE 'DMAR|virtio|iommu|watchdog|timed out|BUG:|Call Trace'
echo "VLEND dmesg"
echo "VLDONE"
poweroff -f
