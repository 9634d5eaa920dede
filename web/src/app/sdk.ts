// The parts of matrix-js-sdk this app uses, imported from the SDK's own modules rather than its index:
// the index also pulls in the widget API and the embedded (widget) client, which a web client that is
// not a widget host never runs. createClient mirrors the SDK's own (memory store, scheduler); the legacy
// crypto store is only read to migrate old Olm data, so an empty in-memory one stands in for it.
import { MatrixClient, type ICreateClientOpts } from "matrix-js-sdk/lib/client.js";
import { MemoryStore } from "matrix-js-sdk/lib/store/memory.js";
import { MatrixScheduler } from "matrix-js-sdk/lib/scheduler.js";
import { MemoryCryptoStore } from "matrix-js-sdk/lib/crypto/store/memory-crypto-store.js";

export { MatrixClient, ClientEvent } from "matrix-js-sdk/lib/client.js";
export { SyncState } from "matrix-js-sdk/lib/sync.js";
export { MatrixEvent, MatrixEventEvent } from "matrix-js-sdk/lib/models/event.js";
export { Room, RoomEvent, NotificationCountType } from "matrix-js-sdk/lib/models/room.js";
export { RoomStateEvent } from "matrix-js-sdk/lib/models/room-state.js";
export { RoomMemberEvent } from "matrix-js-sdk/lib/models/room-member.js";
export { Direction } from "matrix-js-sdk/lib/models/event-timeline.js";
export { EventType } from "matrix-js-sdk/lib/@types/event.js";
export { Preset, Visibility } from "matrix-js-sdk/lib/@types/partials.js";
export { HttpApiEvent } from "matrix-js-sdk/lib/http-api/index.js";
export { decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/index.js";

export function createClient(opts: ICreateClientOpts): MatrixClient {
    return new MatrixClient({
        store: new MemoryStore({ localStorage: globalThis.localStorage }),
        scheduler: new MatrixScheduler(),
        cryptoStore: new MemoryCryptoStore(),
        ...opts,
    });
}
