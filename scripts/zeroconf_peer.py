#!/usr/bin/env python3
"""An independent mDNS peer for peat-mesh's discovery tests (python-zeroconf).

Registers `<name>._peat._tcp.local.` with TXT node_id/device_id on ADDRESS:PORT, browses for
`_peat._tcp.local.`, prints `found <instance> node_id=<id> address=<ip>:<port>` for each service it
resolves and `removed <instance>` when one leaves, and exits after SECONDS (bounded by design).
"""
import socket
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf


def main() -> None:
    name, address, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    info = ServiceInfo(
        "_peat._tcp.local.", f"{name}._peat._tcp.local.",
        addresses=[socket.inet_aton(address)], port=port,
        properties={"node_id": name, "device_id": "0" * 32}, server=f"{name}.local.")
    zc.register_service(info)

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Removed:
            print(f"removed {name}", flush=True)
            return
        found = zeroconf.get_service_info(service_type, name, timeout=2000)
        if found is None:
            return
        node_id = (found.properties or {}).get(b"node_id", b"").decode()
        addresses = ",".join(found.parsed_addresses())
        print(f"found {name} node_id={node_id} address={addresses}:{found.port}", flush=True)

    ServiceBrowser(zc, "_peat._tcp.local.", handlers=[on_change])
    print("ready", flush=True)
    time.sleep(seconds)
    zc.unregister_service(info)
    zc.close()


if __name__ == "__main__":
    main()
