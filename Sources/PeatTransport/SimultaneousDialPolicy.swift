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
    /// Whether a new connection with `newRole` is kept, given the one a transport already holds to
    /// the same peer (`existing`: its role and when it was authenticated; nil when there is none).
    func admits(
        newRole: MembershipRole, existing: (role: MembershipRole, since: ContinuousClock.Instant)?, now: ContinuousClock.Instant,
        local: DeviceID, peer: DeviceID
    ) -> Bool {
        guard let existing else { return true }
        return newReplacesExisting(
            existingRole: existing.role, existingAge: existing.since.duration(to: now), newRole: newRole, local: local, peer: peer)
    }
}
