import { describe, expect, it } from "vitest";
import { ApiError, describeError, isMissingEndpoint } from "./errors";

describe("describeError", () => {
    it("gives sentences, never JSON", () => {
        expect(describeError(new ApiError(403, "M_FORBIDDEN", "Invalid password"))).toBe("Wrong username or password.");
        expect(describeError(new ApiError(403, "M_FORBIDDEN", "you are not a server admin"), { forbidden: "Only server admins can see this page." })).toBe(
            "Only server admins can see this page.",
        );
        expect(describeError(new ApiError(404, "M_UNRECOGNIZED", "unrecognized request"))).toBe("This server doesn't offer that feature yet.");
        expect(describeError(new ApiError(400, "M_INVALID_PARAM", "no such device"))).toBe("No such device.");
        expect(describeError(new ApiError(500, "", '{"weird":"json"}'))).toBe("The server had a problem. Try again in a moment.");
        expect(describeError(new ApiError(429, "M_LIMIT_EXCEEDED", "", { retry_after_ms: 2500 }))).toBe("Too many attempts. Try again in 3 seconds.");
        expect(describeError(new ApiError(0, "NETWORK", ""))).toMatch(/Can't reach the server/);
        expect(describeError(new Error("The two passwords don't match."))).toBe("The two passwords don't match.");
        expect(describeError({ errcode: "M_USER_IN_USE", httpStatus: 400, data: { error: "User ID already taken" } })).toBe("That username is already taken.");
    });

    it("recognises endpoints the server does not have yet", () => {
        expect(isMissingEndpoint(new ApiError(404, "M_UNRECOGNIZED", ""))).toBe(true);
        expect(isMissingEndpoint(new ApiError(405, "M_UNRECOGNIZED", "method not allowed"))).toBe(true);
        expect(isMissingEndpoint(new ApiError(404, "M_NOT_FOUND", "no such room"))).toBe(false);
        expect(isMissingEndpoint(new ApiError(403, "M_FORBIDDEN", ""))).toBe(false);
    });
});
