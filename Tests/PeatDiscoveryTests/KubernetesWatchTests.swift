import Foundation
import PeatDiscovery
import PeatKubernetesDiscovery
import Testing

struct WatchEventDecoderTests {
    static let added =
        #"{"type":"ADDED","object":{"kind":"EndpointSlice","metadata":{"name":"s1","resourceVersion":"101"},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"targetRef":{"kind":"Pod","name":"peat-mesh-0"}}],"ports":[{"name":"sync","port":11204}]}}"#
    static let bookmark = #"{"type":"BOOKMARK","object":{"kind":"EndpointSlice","metadata":{"resourceVersion":"150"},"addressType":"","endpoints":null}}"#
    static let expired =
        #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#

    @Test func decodesEventsCutAtEveryPossibleChunkBoundary() throws {
        let stream = Array((Self.added + "\n" + Self.bookmark + "\n" + Self.expired + "\n").utf8)
        for cut in stride(from: 1, to: stream.count, by: 7) {
            var decoder = WatchEventDecoder()
            var events = try decoder.feed(stream[..<cut])
            events += try decoder.feed(stream[cut...])
            #expect(events.count == 3, "cut at \(cut)")
            guard case .added(let slice)? = events.first else {
                Issue.record("expected ADDED")
                return
            }
            #expect(slice.metadata?.name == "s1")
            #expect(events[1] == .bookmark(resourceVersion: "150"))
            #expect(events[2] == .error(code: 410, reason: "Expired"))
        }
    }

    @Test func severalEventsInOneChunkAndBlankLines() throws {
        var decoder = WatchEventDecoder()
        let events = try decoder.feed(Array((Self.bookmark + "\n\n" + Self.bookmark + "\r\n").utf8))
        #expect(events == [.bookmark(resourceVersion: "150"), .bookmark(resourceVersion: "150")])
        #expect(try decoder.feed(Array("{\"type\":".utf8)).isEmpty, "half an event waits for the rest")
    }

    @Test(arguments: ["not json\n", #"{"type":"SURPRISE","object":{}}"# + "\n", #"{"type":"BOOKMARK","object":{}}"# + "\n", #"{"object":{}}"# + "\n"])
    func malformedLinesAreErrors(_ line: String) {
        var decoder = WatchEventDecoder()
        #expect { try decoder.feed(Array(line.utf8)) } throws: { ($0 as? DiscoveryError)?.code == .malformedResponse }
    }

    @Test func refusesALineBeyondTheLimit() {
        var decoder = WatchEventDecoder(maximumLineLength: 64)
        #expect(throws: DiscoveryError.self) { try decoder.feed([UInt8](repeating: UInt8(ascii: "x"), count: 100)) }
    }
}

struct EndpointSliceCacheTests {
    static func slice(_ name: String, version: String, pods: [(String, String, Bool)]) throws -> EndpointSlice {
        let endpoints = pods.map { pod, address, serving in
            #"{"addresses":["\#(address)"],"conditions":{"serving":\#(serving),"terminating":false},"targetRef":{"kind":"Pod","name":"\#(pod)"}}"#
        }.joined(separator: ",")
        return try EndpointSlice.decode(
            Data(
                #"{"metadata":{"name":"\#(name)","resourceVersion":"\#(version)"},"addressType":"IPv4","endpoints":[\#(endpoints)],"ports":[{"name":"sync","port":11204}]}"#
                    .utf8))
    }

    static func peer(_ id: String, _ address: String) -> PeerInfo {
        PeerInfo(nodeID: id, addresses: [PeerEndpoint(host: address, port: 11204)], source: "kubernetes")
    }

    @Test func listThenWatchEventsBecomeDiscoveryEvents() throws {
        var cache = EndpointSliceCache(peers: EndpointSlicePeers(localNodeID: "peat-mesh-0"))
        let listed = try Self.slice("s1", version: "10", pods: [("peat-mesh-0", "10.0.0.1", true), ("peat-mesh-1", "10.0.0.2", true)])
        #expect(cache.replace(with: [listed], resourceVersion: "100") == [.peerFound(Self.peer("peat-mesh-1", "10.0.0.2"))])
        #expect(cache.resourceVersion == "100")

        // A new pod appears.
        let grown = try Self.slice(
            "s1", version: "101", pods: [("peat-mesh-0", "10.0.0.1", true), ("peat-mesh-1", "10.0.0.2", true), ("peat-mesh-2", "10.0.0.3", true)])
        #expect(cache.apply(.modified(grown)) == .events([.peerFound(Self.peer("peat-mesh-2", "10.0.0.3"))]))
        #expect(cache.resourceVersion == "101")

        // A pod stops serving (terminating): it is lost.
        let shrinking = try Self.slice(
            "s1", version: "102", pods: [("peat-mesh-0", "10.0.0.1", true), ("peat-mesh-1", "10.0.0.2", false), ("peat-mesh-2", "10.0.0.3", true)])
        #expect(cache.apply(.modified(shrinking)) == .events([.peerLost(nodeID: "peat-mesh-1")]))

        // A pod recreated with a new IP: updated.
        let moved = try Self.slice("s1", version: "103", pods: [("peat-mesh-0", "10.0.0.1", true), ("peat-mesh-2", "10.0.0.9", true)])
        #expect(cache.apply(.modified(moved)) == .events([.peerUpdated(Self.peer("peat-mesh-2", "10.0.0.9"))]))

        // Bookmarks move the version and change nothing else; 410 asks for a re-list.
        #expect(cache.apply(.bookmark(resourceVersion: "200")) == .events([]))
        #expect(cache.resourceVersion == "200")
        #expect(cache.apply(.error(code: 410, reason: "Expired")) == .relist)
        #expect(cache.apply(.error(code: 500, reason: nil)) == .events([]))

        // The slice is deleted: its peers are lost.
        #expect(cache.apply(.deleted(moved)) == .events([.peerLost(nodeID: "peat-mesh-2")]))
    }

    @Test func aPodInTwoSlicesStaysWhileEitherHasIt() throws {
        var cache = EndpointSliceCache(peers: EndpointSlicePeers())
        let a = try Self.slice("a", version: "1", pods: [("p", "10.0.0.1", true)])
        let b = try Self.slice("b", version: "2", pods: [("p", "10.0.0.1", true)])
        _ = cache.replace(with: [a, b], resourceVersion: "2")
        #expect(cache.apply(.deleted(a)) == .events([]), "still in slice b: not lost")
        #expect(cache.apply(.deleted(b)) == .events([.peerLost(nodeID: "p")]))
    }

    @Test func relistReplacesStateAndReportsOnlyTheDifference() throws {
        var cache = EndpointSliceCache(peers: EndpointSlicePeers())
        _ = cache.replace(with: [try Self.slice("s", version: "1", pods: [("p1", "10.0.0.1", true), ("p2", "10.0.0.2", true)])], resourceVersion: "1")
        let events = cache.replace(with: [try Self.slice("s", version: "5", pods: [("p2", "10.0.0.2", true), ("p3", "10.0.0.3", true)])], resourceVersion: "5")
        #expect(events == [.peerFound(Self.peer("p3", "10.0.0.3")), .peerLost(nodeID: "p1")])
    }
}
