public import PeatIdentity

/// Decides which of two connections between the same pair of devices to keep.
///
/// When two devices dial each other at about the same time, each ends up with two connections;
/// both must close the same one. Within `window` of each other, the connection whose initiator has
/// the lower `DeviceID` wins — both sides compute the same answer. A connection that arrives later
/// than that replaces the older one: the peer evidently dialled again because it lost the old
/// connection (for example it restarted), which this side may not have noticed yet.
public struct SimultaneousDialPolicy: Sendable {
    /// How close together two connections must be to count as a simultaneous dial.
    public var window: Duration

    public init(window: Duration = .seconds(5)) {
        self.window = window
    }

    /// Whether a newly authenticated connection should replace the existing one.
    /// - Parameters:
    ///   - existingRole: This node's role on the existing connection.
    ///   - existingAge: How long ago the existing connection was authenticated.
    ///   - newRole: This node's role on the new connection.
    ///   - local: This node's device ID.
    ///   - peer: The peer's device ID.
    public func newReplacesExisting(
        existingRole: MembershipRole,
        existingAge: Duration,
        newRole: MembershipRole,
        local: DeviceID,
        peer: DeviceID
    ) -> Bool {
        guard existingAge <= window else { return true }
        let localShouldInitiate = local < peer
        let newIsPreferred = (newRole == .initiator) == localShouldInitiate
        let existingIsPreferred = (existingRole == .initiator) == localShouldInitiate
        if newIsPreferred != existingIsPreferred { return newIsPreferred }
        return true
    }
}

extension SimultaneousDialPolicy {
    /// Whether a new connection with `newRole` over `newPath` is kept, given the one a transport
    /// already holds to the same peer (`existing`: its role, path and when it was authenticated; nil
    /// when there is none).
    ///
    /// Paths come first: a direct connection always replaces a relayed one (the session moves to
    /// it), and a relayed one replaces a direct one only as a later connection does (after
    /// `window`: the peer restarted and can only come through the relay).
    func admits(
        newRole: MembershipRole, newPath: ConnectionPath = .direct,
        existing: (role: MembershipRole, path: ConnectionPath, since: ContinuousClock.Instant)?, now: ContinuousClock.Instant,
        local: DeviceID, peer: DeviceID
    ) -> Bool {
        guard let existing else { return true }
        let age = existing.since.duration(to: now)
        switch (newPath == .direct, existing.path == .direct) {
        case (true, false): return true
        case (false, true): return age > window
        default: return newReplacesExisting(existingRole: existing.role, existingAge: age, newRole: newRole, local: local, peer: peer)
        }
    }
}
