public import PeatDiscovery

/// The EndpointSlices a list + watch has seen, and the peers they make.
///
/// A plain value: `KubernetesDiscovery` drives it from list results and watch events, tests drive
/// it directly. Slices are keyed by name; the resource version to watch from is tracked across
/// lists, events and bookmarks.
public struct EndpointSliceCache: Sendable {
    /// What the discovery loop must do after an event.
    public enum Outcome: Sendable, Equatable {
        /// Emit these discovery events (possibly none) and keep watching.
        case events([DiscoveryEvent])
        /// The resource version expired (410): list again, then watch from the new list.
        case relist
    }

    public private(set) var resourceVersion: String?
    private var slices: [String: EndpointSlice] = [:]
    private var differ = PeerSnapshotDiffer()
    private let peers: EndpointSlicePeers

    public init(peers: EndpointSlicePeers) {
        self.peers = peers
    }

    /// Replaces everything with a list result.
    public mutating func replace(with listed: [EndpointSlice], resourceVersion: String?) -> [DiscoveryEvent] {
        slices = [:]
        for (index, slice) in listed.enumerated() {
            slices[slice.metadata?.name ?? "unnamed-\(index)"] = slice
        }
        self.resourceVersion = resourceVersion
        return differ.update(to: peers.peers(from: Array(slices.values)))
    }

    /// Applies one watch event.
    public mutating func apply(_ event: WatchEvent) -> Outcome {
        switch event {
        case .added(let slice), .modified(let slice):
            guard let name = slice.metadata?.name else { return .events([]) }
            slices[name] = slice
            track(slice)
        case .deleted(let slice):
            guard let name = slice.metadata?.name else { return .events([]) }
            slices[name] = nil
            track(slice)
        case .bookmark(let version):
            resourceVersion = version
            return .events([])
        case .error(let code, _):
            return code == 410 ? .relist : .events([])
        }
        return .events(differ.update(to: peers.peers(from: Array(slices.values))))
    }

    private mutating func track(_ slice: EndpointSlice) {
        if let version = slice.metadata?.resourceVersion { resourceVersion = version }
    }
}
