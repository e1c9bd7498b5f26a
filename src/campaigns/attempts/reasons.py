"""Every reason code an attempt can carry, with the status it comes with and what it means.

The one list of them: the reference page (docs/reference/reason-codes.md) is generated from it, and a test checks
that every code the code can write is here and every code here is written somewhere. A reason is stored as its
string value in ``contact_attempts.reason``.
"""

from __future__ import annotations

from enum import StrEnum

class Reason(StrEnum):
    paid = "paid"
    reopened = "reopened"
    figures_changed = "figures_changed"
    placed = "placed"
    in_plan = "in_plan"
    promise_open = "promise_open"
    deceased = "deceased"
    cease_and_desist = "cease_and_desist"
    attorney_represented = "attorney_represented"
    bankruptcy = "bankruptcy"
    mental_capacity = "mental_capacity"
    breathing_space = "breathing_space"
    disputed = "disputed"
    opted_out = "opted_out"
    no_consent = "no_consent"
    employer_email = "employer_email"
    invalid_address = "invalid_address"
    unknown_timezone = "unknown_timezone"
    frequency_cap = "frequency_cap"
    expired = "expired"
    outside_contact_window = "outside_contact_window"
    sunday = "sunday"
    holiday = "holiday"
    send_hour = "send_hour"
    provider_retry = "provider_retry"
    template_error = "template_error"
    no_template = "no_template"
    content_incomplete = "content_incomplete"
    time_barred_content = "time_barred_content"
    not_past_due = "not_past_due"
    channel_unavailable = "channel_unavailable"
    provider_error = "provider_error"
    interrupted = "interrupted"
    unconfirmed = "unconfirmed"
    sms_too_long = "sms_too_long"
    dropped = "dropped"
    provider_rejected = "provider_rejected"
    provider_auth = "provider_auth"
    message_too_large = "message_too_large"
    low_uplift = "low_uplift"


# The status each reason comes with, and what it means (Markdown: code spans are kept in the reference).
MEANING: dict[Reason, tuple[str, str]] = {
    Reason.paid: ("suppressed",
        "paid or closed (or nothing owed) by the time the message was to go out; also set at once when a payment "
        "cures what a queued message asks for"),
    Reason.reopened: ("suppressed",
        "a thank-you whose account owes again before it went out (a payment was reversed)"),
    Reason.figures_changed: ("suppressed",
        "the message states figures (amount due, balance, credit, instalment) the ledger no longer holds: a "
        "payment, a reversal or a new statement arrived after it was written. Checked right before anything goes "
        "out; the next run writes it again with the figures of that moment (a thank-you stopped this way does "
        "not count as the payoff's thank-you)"),
    Reason.placed: ("suppressed",
        "the account is placed with a collection agency: we no longer contact the customer"),
    Reason.in_plan: ("suppressed",
        "queued before the customer accepted an instalment plan (the plan's own reminders follow)"),
    Reason.promise_open: ("suppressed",
        "queued before the customer promised to pay by a date"),
    Reason.deceased: ("suppressed",
        "hold: the customer has died"),
    Reason.cease_and_desist: ("suppressed",
        "the customer asked us to stop (import flag `cease_contact` or a hold)"),
    Reason.attorney_represented: ("suppressed",
        "hold: represented by an attorney"),
    Reason.bankruptcy: ("suppressed",
        "hold: in bankruptcy proceedings"),
    Reason.mental_capacity: ("suppressed",
        "hold: may lack mental capacity to deal with the debt"),
    Reason.breathing_space: ("suppressed",
        "hold: UK Debt Respite Scheme breathing space, until its end date"),
    Reason.disputed: ("suppressed",
        "an open dispute stops collection until it is resolved"),
    Reason.opted_out: ("suppressed",
        "the customer opted out of this channel"),
    Reason.no_consent: ("suppressed",
        "no recorded consent for this channel (SMS)"),
    Reason.employer_email: ("suppressed",
        "an employer-provided address the customer has not used with us nor agreed to"),
    Reason.invalid_address: ("suppressed",
        "no usable email address / phone number"),
    Reason.unknown_timezone: ("suppressed",
        "no plausible time zone at all (no stated zone, no geographic phone, no country): fails closed"),
    Reason.frequency_cap: ("suppressed",
        "a contact cap of the customer's jurisdiction is reached (below)"),
    Reason.expired: ("suppressed",
        "no allowed moment before the message's deadline (`max_defer_hours` after it was queued)"),
    Reason.outside_contact_window: ("deferred",
        "outside the local contact window in at least one plausible zone"),
    Reason.sunday: ("deferred",
        "a Sunday where the profile forbids Sunday contact"),
    Reason.holiday: ("deferred",
        "a public holiday of the customer's jurisdiction"),
    Reason.send_hour: ("deferred",
        "the account's experiment arm sends later in the customer's day (`send_hour`); the dispatcher checks "
        "every rule again then"),
    Reason.provider_retry: ("deferred",
        "the provider refused for now (429/5xx): due again at once (or when its `Retry-After` says), retried "
        "with back-off"),
    Reason.template_error: ("failed",
        "anything went wrong rendering the template (a missing value, `{{ name + 1 }}`): that message fails, the "
        "run goes on; `detail` says where and what (`soft_nudge/email.en-US.j2 line 4: TypeError`), never the "
        "error's text, which can echo a customer's data"),
    Reason.no_template: ("failed",
        "no template for the stage, channel and locale (nor the en-US fallback)"),
    Reason.content_incomplete: ("failed",
        "the rendered message lacks the amount, due date, pay link or opt-out line: nothing incomplete reaches a "
        "customer"),
    Reason.time_barred_content: ("failed",
        "the account is time-barred and the template mentions legal action"),
    Reason.not_past_due: ("failed",
        "the stage's message says the payment is late (soft_nudge, plan_offer, escalation) and the account is "
        "not past due: never rendered for it"),
    Reason.channel_unavailable: ("failed",
        "no gateway is configured for the channel"),
    Reason.provider_error: ("unknown",
        "the provider call failed in an unknown way (a timeout after the request went out, a broken connection)"),
    Reason.interrupted: ("unknown",
        "the process died between claiming the message and writing the provider's answer; with a provider that "
        "honours our idempotency key (outbox, worklist, push) it is `deferred` and sent again instead (see "
        "Crashes)"),
    Reason.unconfirmed: ("deferred",
        "`unknown`, and the provider has still reported nothing about it after "
        "`CAMPAIGNS_RESEND_UNCONFIRMED_AFTER_HOURS`: it never arrived, so it is sent again"),
    Reason.sms_too_long: ("failed",
        "the SMS would take more segments than `sms_max_segments` (`config/policy.yaml`; GSM-7 153 characters a "
        "segment, UCS-2 such as Chinese 67)"),
    Reason.dropped: ("failed",
        "the provider dropped or could not deliver the message (SendGrid `dropped`, Twilio "
        "`undelivered`/`failed`)"),
    Reason.provider_rejected: ("failed",
        "the provider refused the request for good (4xx): bad request, bad credentials, too big; `detail` has "
        "the status and the fields the provider named (`SendGrid 400: field content.0.value`), never its text "
        "(it can quote the message)"),
    Reason.provider_auth: ("failed",
        "the provider refused the request for good (4xx): bad request, bad credentials, too big; `detail` has "
        "the status and the fields the provider named (`SendGrid 400: field content.0.value`), never its text "
        "(it can quote the message)"),
    Reason.message_too_large: ("failed",
        "the provider refused the request for good (4xx): bad request, bad credentials, too big; `detail` has "
        "the status and the fields the provider named (`SendGrid 400: field content.0.value`), never its text "
        "(it can quote the message)"),
    Reason.low_uplift: ("suppressed",
        "assigned to an arm that targets by predicted uplift (`targeting` in the ladder), and the uplift model "
        "predicts contacting this account helps it pay less than the arm's threshold: not contacted, after every "
        "compliance rule; the prediction and the model's version are in the trace. The account stays in its arm "
        "for the review"),
}

# What each status of an attempt means.
STATUS_MEANING: dict[str, str] = {
    "queued": "decided and rendered; the deliverer hands it to its channel next",
    "sent": "handed to the channel (the outbox, the worklist, later a provider), with its `provider_message_id`",
    "deferred": "on its way, held until the compliance rules allow it (`release_after`); the dispatcher releases "
        "it",
    "suppressed": "not contacted; `reason` says why (below)",
    "holdout": "in the experiment's holdout: logged, deliberately not contacted",
    "failed": "could not be sent; `reason` says why (below)",
    "unknown": "the provider call ended in a way that leaves it unclear whether it went out: parked, never "
        "re-sent blindly; the provider's events settle it",
    "sending": "claimed by a deliverer, the provider's answer not written yet (a crash leaves it here until "
        "recovered)",
    "delivered": "the provider reported delivery (SendGrid `delivered`, Twilio `delivered`)",
    "bounced": "the provider reported a bounce; a hard bounce also marks the address invalid and the stage falls "
        "back to its next channel",
}
