import Foundation
import PeatDiscovery
import PeatFuzzSupport
import PeatKubernetesDiscovery

/// `EndpointSlice.decode(_:)` on a list item's JSON, then `EndpointSlicePeers.peers(from:)` on the
/// decoded slice (twice, so a pod in two slices merges). Decoding throws `DiscoveryError` or yields a
/// slice; turning slices into peers never traps.
enum EndpointSliceTarget {
    static let peers = EndpointSlicePeers(localNodeID: "peat-mesh-0")

    static func run(_ bytes: [UInt8]) {
        let slice: EndpointSlice
        do {
            slice = try EndpointSlice.decode(Data(bytes))
        } catch {
            fuzzInvariant(error.code == .malformedResponse, "EndpointSlice threw \(error.code)")
            return
        }
        let found = peers.peers(from: [slice, slice])
        fuzzInvariant(found.allSatisfy { $0.nodeID != "peat-mesh-0" && !$0.addresses.isEmpty }, "a peer without addresses, or this node")
    }

    static let slice = """
        {"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1",
         "metadata":{"name":"peat-mesh-abc12","resourceVersion":"4711","labels":{"kubernetes.io/service-name":"peat-mesh"},
                     "annotations":{"peat.relay_url":"https://relay.example:443","peat.zone":"eu-1","other":"x"}},
         "addressType":"IPv4",
         "endpoints":[
           {"addresses":["10.42.0.7"],"conditions":{"ready":true,"serving":true,"terminating":false},
            "hostname":"peat-mesh-1","targetRef":{"kind":"Pod","name":"peat-mesh-1","uid":"u-1"},"nodeName":"k3d-0"},
           {"addresses":["10.42.0.8"],"conditions":{"ready":false,"serving":true,"terminating":true},
            "targetRef":{"kind":"Pod","name":"peat-mesh-2"}},
           {"addresses":["10.42.0.9"],"conditions":{},"hostname":"peat-mesh-0"},
           {"addresses":[],"targetRef":{"name":"peat-mesh-3"}}
         ],
         "ports":[{"name":"broker","port":8081,"protocol":"TCP"},{"name":"sync","port":11204,"protocol":"TCP"}]}
        """

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        [
            ("slice", Array(slice.utf8)),
            ("ipv6", Array(slice.replacingOccurrences(of: "IPv4", with: "IPv6").replacingOccurrences(of: "10.42.0.", with: "fd00::").utf8)),
            ("fqdn", Array(#"{"addressType":"FQDN","endpoints":[{"addresses":["a.example"]}]}"#.utf8)),
            ("null-endpoints", Array(#"{"metadata":{"name":"s"},"addressType":"IPv4","endpoints":null,"ports":null}"#.utf8)),
            ("bad-port", Array(#"{"addressType":"IPv4","endpoints":[{"addresses":["1.2.3.4"],"hostname":"h"}],"ports":[{"name":"sync","port":70000}]}"#.utf8)),
            ("wrong-types", Array(#"{"addressType":4,"endpoints":{"a":1}}"#.utf8)),
            ("empty-object", Array("{}".utf8)),
            ("not-json", Array("EndpointSlice".utf8)),
        ]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    EndpointSliceTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: EndpointSliceTarget.seeds)
