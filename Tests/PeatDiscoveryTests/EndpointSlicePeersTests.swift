import Foundation
import PeatDiscovery
import PeatKubernetesDiscovery
import Testing

struct EndpointSlicePeersTests {
    static func slice(_ json: String) throws -> EndpointSlice {
        try EndpointSlice.decode(Data(json.utf8))
    }

    static let ready = try! slice(
        """
        {"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"peat-mesh-abc","resourceVersion":"1001",
         "labels":{"app":"peat-mesh","kubernetes.io/service-name":"peat-mesh"},
         "annotations":{"peat.relay_url":"https://relay.example.com","peat.formation":"alpha","other/annotation":"x"}},
         "addressType":"IPv4",
         "endpoints":[
          {"addresses":["10.42.0.5"],"conditions":{"ready":true,"serving":true,"terminating":false},"hostname":"peat-mesh-0",
           "targetRef":{"kind":"Pod","name":"peat-mesh-0","uid":"u0"},"nodeName":"k3d-agent-0","unknownField":{"x":1}},
          {"addresses":["10.42.0.6"],"conditions":{"ready":false,"serving":false,"terminating":false},"targetRef":{"kind":"Pod","name":"peat-mesh-1"}},
          {"addresses":["10.42.0.7"],"conditions":{"ready":true,"serving":true,"terminating":true},"targetRef":{"kind":"Pod","name":"peat-mesh-2"}},
          {"addresses":["10.42.0.8"],"conditions":{},"targetRef":{"kind":"Pod","name":"peat-mesh-3"}},
          {"addresses":["10.42.0.9"],"targetRef":{"kind":"Pod","name":"peat-mesh-4"}}
         ],
         "ports":[{"name":"broker","port":8081,"protocol":"TCP"},{"name":"sync","port":31204,"protocol":"TCP"}]}
        """)

    @Test func readyAndServingEndpointsBecomePeersOnTheSyncPort() {
        let peers = EndpointSlicePeers().peers(from: [Self.ready])
        #expect(peers.map(\.nodeID) == ["peat-mesh-0", "peat-mesh-3", "peat-mesh-4"])
        #expect(peers[0].addresses == [PeerEndpoint(host: "10.42.0.5", port: 31204)], "the port named sync, not the first port")
        #expect(peers[0].relayURL == "https://relay.example.com")
        #expect(peers[0].metadata == ["formation": "alpha"])
        #expect(peers[0].source == "kubernetes")
    }

    @Test func eligibilityFollowsServingAndTerminatingWithReadyAsFallback() {
        #expect(EndpointSlicePeers.isEligible(nil) == true)
        #expect(EndpointSlicePeers.isEligible(.init(ready: true, serving: nil, terminating: nil)) == true)
        #expect(EndpointSlicePeers.isEligible(.init(ready: false, serving: nil, terminating: nil)) == false)
        #expect(EndpointSlicePeers.isEligible(.init(ready: false, serving: true, terminating: false)) == true)
        #expect(
            EndpointSlicePeers.isEligible(.init(ready: true, serving: true, terminating: true)) == false,
            "publishNotReadyAddresses keeps ready=true while terminating")
    }

    @Test func onePodInTwoSlicesIsOnePeerWithMergedAddresses() throws {
        let v4 = try Self.slice(
            #"{"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"targetRef":{"kind":"Pod","name":"p0"}}],"ports":[{"name":"sync","port":11204}]}"#)
        let v4Again = try Self.slice(
            #"{"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"targetRef":{"kind":"Pod","name":"p0"}}],"ports":[{"name":"sync","port":11204}]}"#)
        let v6 = try Self.slice(
            #"{"addressType":"IPv6","endpoints":[{"addresses":["fd00::1"],"targetRef":{"kind":"Pod","name":"p0"}}],"ports":[{"name":"sync","port":11204}]}"#)
        let peers = EndpointSlicePeers().peers(from: [v4, v4Again, v6])
        #expect(peers.count == 1)
        #expect(peers[0].addresses == [PeerEndpoint(host: "10.0.0.1", port: 11204), PeerEndpoint(host: "fd00::1", port: 11204)])
    }

    @Test func toleratesNullEndpointsMissingPortsFQDNAndBookmarks() throws {
        let nullEndpoints = try Self.slice(#"{"addressType":"IPv4","endpoints":null,"ports":null}"#)
        let bookmark = try Self.slice(#"{"kind":"EndpointSlice","metadata":{"resourceVersion":"12345"},"addressType":"","endpoints":null}"#)
        let fqdn = try Self.slice(#"{"addressType":"FQDN","endpoints":[{"addresses":["peat.example.com"],"targetRef":{"name":"x"}}]}"#)
        let noPorts = try Self.slice(#"{"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.2"],"targetRef":{"name":"p1"}}]}"#)
        let peers = EndpointSlicePeers(defaultSyncPort: 12000).peers(from: [nullEndpoints, bookmark, fqdn, noPorts])
        #expect(peers.map(\.nodeID) == ["p1"])
        #expect(peers[0].addresses == [PeerEndpoint(host: "10.0.0.2", port: 12000)], "no port named sync: the node's own sync port")
        #expect(bookmark.metadata?.resourceVersion == "12345")
    }

    @Test func excludesItselfAndEndpointsWithoutIdentityOrAddress() throws {
        let slice = try Self.slice(
            #"{"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"targetRef":{"name":"me"}},{"addresses":[],"targetRef":{"name":"empty"}},{"addresses":["10.0.0.3"]}]}"#
        )
        #expect(EndpointSlicePeers(localNodeID: "me").peers(from: [slice]).isEmpty)
    }

    @Test func malformedJSONIsAnErrorNotACrash() {
        #expect { try Self.slice("{not json") } throws: { ($0 as? DiscoveryError)?.code == .malformedResponse }
        #expect { try Self.slice(#"{"endpoints":"nope"}"#) } throws: { ($0 as? DiscoveryError)?.code == .malformedResponse }
    }
}
