"""Who may see and do what: one principal, one organisation scope, one table of actions.

A principal is whoever acts: an API token, a logged-in user, a CLI run, the head-end
itself. Its organisations limit what it sees; anything outside answers as if it did
not exist (services raise NotFound). Its role decides what it may change: the table
ALLOWED below is the only place that says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from askue.headend.errors import Forbidden

ROLES = ("admin", "dispatcher", "org_admin", "viewer", "billing", "customer")
# billing systems get API tokens, not logins; customers are users bound to accounts (customers/accounts.py)
USER_ROLES = ("admin", "dispatcher", "org_admin", "viewer", "customer")
STAFF_ROLES = ("admin", "dispatcher", "org_admin", "viewer")
ROLE_TITLES = {"admin": ("Администратор", "Administrator"), "dispatcher": ("Диспетчер", "Dispatcher"),
               "org_admin": ("Администратор организации", "Organisation admin"),
               "viewer": ("Наблюдатель", "Viewer"), "billing": ("Биллинг (API)", "Billing (API)"),
               "customer": ("Потребитель", "Customer")}

# A customer's role on one of its accounts (a legal entity's contract), as the seed's cabinet names
# them: «Энергетик» works with readings, «Бухгалтер» with documents and downloads, «Руководитель»
# (a household's only role) with both, and «Администратор» (one per contract, given by the
# organisation) with both and with the other customers' roles on the contract.
DUTIES = {"admin": ("Администратор", "Administrator"), "manager": ("Руководитель", "Manager"),
          "energetic": ("Энергетик", "Power engineer"), "accountant": ("Бухгалтер", "Accountant")}
DUTY_MAY = {"readings": frozenset({"admin", "manager", "energetic"}),
            "documents": frozenset({"admin", "manager", "accountant"}), "roles": frozenset({"admin"})}


class Action(StrEnum):
    EVENTS_ACT = "events.act"  # acknowledge, resolve abnormal events
    READINGS_ENTER = "readings.enter"  # manual and consumer readings, the integral template
    VALUES_CORRECT = "values.correct"  # change a stored value with a reason
    THRESHOLDS_SET = "vee.thresholds.set"
    BILLING_CLOSE = "billing.close"  # close and recalculate billing periods
    BILLING_IMPORT = "billing.import"  # 80020 and hourly profile files
    BILLING_WINDOW = "billing.window"  # the reading acceptance window
    USERS_MANAGE = "users.manage"
    TOKENS_CREATE = "tokens.create"
    REGISTRY_EDIT = "registry.edit"  # houses, accounts, gateways, meters, bindings, dated parameters
    REGISTRY_ORGS = "registry.organisations"  # create organisations
    REGISTRY_ACTS = "registry.acts"  # install, exchange and removal acts
    REGISTRY_CONFIRM = "registry.confirm"  # confirm a reported serial, release or discard quarantined values
    ALERTS_SUBSCRIBE = "alerts.subscribe"  # one's own alert subscriptions by e-mail
    ALERTS_WEBHOOK = "alerts.webhook"  # alert subscriptions that POST to a URL (the head-end calls out)
    COMMANDS_SEND = "commands.send"  # poll a meter now, read its profile or clock, sync its clock
    COMMANDS_RELAY = "commands.relay"  # switch a meter's load relay off or on
    COMMANDS_GATEWAY = "commands.gateway"  # gateway-wide: poll every meter, reload the config
    CUSTOMERS_MANAGE = "customers.manage"  # create customers, bind them to accounts, invite, import
    READINGS_CONFIRM = "readings.confirm"  # confirm or reject the readings customers submitted
    CABINET = "cabinet"  # the customer cabinet's pages


# Roles a user manager may give: an organisation's admin manages its own people only.
# Customers are created with their accounts (customers/accounts.py), never on the users page.
GRANTABLE: dict[str, tuple[str, ...]] = {"admin": STAFF_ROLES, "org_admin": ("org_admin", "viewer")}

ALLOWED: dict[Action, frozenset[str]] = {
    Action.EVENTS_ACT: frozenset({"admin", "dispatcher", "org_admin"}),
    # a customer enters readings of its own accounts where it has the readings duty (readings/service.py)
    Action.READINGS_ENTER: frozenset({"admin", "dispatcher", "org_admin", "billing", "customer"}),
    Action.VALUES_CORRECT: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.THRESHOLDS_SET: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.BILLING_CLOSE: frozenset({"admin", "billing"}),
    Action.BILLING_IMPORT: frozenset({"admin", "billing", "org_admin"}),
    Action.BILLING_WINDOW: frozenset({"admin", "billing", "org_admin"}),
    Action.USERS_MANAGE: frozenset({"admin", "org_admin"}),
    Action.TOKENS_CREATE: frozenset({"admin"}),
    Action.REGISTRY_EDIT: frozenset({"admin", "org_admin"}),
    Action.REGISTRY_ORGS: frozenset({"admin"}),
    Action.REGISTRY_ACTS: frozenset({"admin", "org_admin", "dispatcher"}),
    Action.REGISTRY_CONFIRM: frozenset({"admin", "org_admin", "dispatcher"}),
    Action.ALERTS_SUBSCRIBE: frozenset({"admin", "dispatcher", "org_admin", "viewer"}),
    Action.ALERTS_WEBHOOK: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.COMMANDS_SEND: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.COMMANDS_RELAY: frozenset({"admin", "dispatcher", "org_admin"}),
    # a gateway may serve several organisations' meters: its own operations stay with the operator
    Action.COMMANDS_GATEWAY: frozenset({"admin", "dispatcher"}),
    Action.CUSTOMERS_MANAGE: frozenset({"admin", "org_admin"}),
    Action.READINGS_CONFIRM: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.CABINET: frozenset({"customer"}),
}


@dataclass(frozen=True)
class Scope:
    """The organisations a principal sees (None: all) and, for a customer, its accounts, as
    SQL conditions built here only.

    A customer sees the meters of its own accounts and nothing else: a condition on an
    organisation alone (`sql`, `named`) is FALSE for it, so every read model that has not
    asked for the meter's condition (`meters`, `meters_named`) shows a customer nothing.
    """

    org_ids: frozenset[int] | None
    account_ids: frozenset[int] | None = None  # a customer's accounts; None: not limited to accounts

    @property
    def everything(self) -> bool:
        return self.org_ids is None and self.account_ids is None

    def sees(self, org_id: int | None) -> bool:
        if self.account_ids is not None:
            return False  # an organisation as a whole is never a customer's
        return self.org_ids is None or (org_id is not None and org_id in self.org_ids)

    def sees_meter(self, org_id: int | None, account_id: int | None) -> bool:
        if self.account_ids is not None:
            return account_id is not None and account_id in self.account_ids and org_id in (self.org_ids or ())
        return self.sees(org_id)

    def sql(self, column: str) -> tuple[str, list]:
        """`column` (an organisation id) limited to the scope, with positional (%s) parameters."""
        if self.account_ids is not None:
            return "FALSE", []
        if self.org_ids is None:
            return "TRUE", []
        return f"{column} = ANY(%s)", [sorted(self.org_ids)]

    def named(self, column: str, name: str = "scope_orgs") -> tuple[str, dict]:
        """The same condition with a named parameter (%(name)s)."""
        if self.account_ids is not None:
            return "FALSE", {}
        if self.org_ids is None:
            return "TRUE", {}
        return f"{column} = ANY(%({name})s)", {name: sorted(self.org_ids)}

    def meters(self, alias: str = "m") -> tuple[str, list]:
        """The meters table (as `alias`; "" for none) limited to the scope, positional parameters."""
        p = f"{alias}." if alias else ""
        if self.account_ids is None:
            return self.sql(f"{p}org_id")
        return (f"({p}org_id = ANY(%s) AND {p}account_id = ANY(%s))",
                [sorted(self.org_ids or ()), sorted(self.account_ids)])

    def meters_named(self, alias: str = "m", name: str = "scope_orgs") -> tuple[str, dict]:
        p = f"{alias}." if alias else ""
        if self.account_ids is None:
            return self.named(f"{p}org_id", name)
        return (f"({p}org_id = ANY(%({name})s) AND {p}account_id = ANY(%({name}_acc)s))",
                {name: sorted(self.org_ids or ()), f"{name}_acc": sorted(self.account_ids)})

    def accounts(self, alias: str = "a") -> tuple[str, list]:
        """The accounts table limited to the scope."""
        p = f"{alias}." if alias else ""
        if self.account_ids is None:
            return self.sql(f"{p}org_id")
        return f"{p}id = ANY(%s)", [sorted(self.account_ids)]


@dataclass(frozen=True)
class Principal:
    name: str  # token name or login: the "who" of the audit log
    role: str
    org_ids: frozenset[int] | None  # None: every organisation
    ip: str | None = None  # where the request came from, when there was one
    # a customer's accounts and its role on each ((account id, duty), …); None for everyone else
    accounts: tuple[tuple[int, str], ...] | None = None

    @property
    def scope(self) -> Scope:
        if self.accounts is None and not self.is_customer:
            return Scope(self.org_ids)
        # a customer principal built without its accounts sees nothing rather than its organisations
        return Scope(self.org_ids, frozenset(a for a, _ in self.accounts or ()))

    @property
    def is_customer(self) -> bool:
        return self.role == "customer"

    def duty(self, account_id: int | None) -> str | None:
        return next((d for a, d in self.accounts or () if a == account_id), None)

    def may_on(self, account_id: int | None, work: str) -> bool:
        """Whether a customer may do `work` ("readings", "documents" or "roles": give colleagues
        roles on the contract) on this account; staff may."""
        if not self.is_customer:
            return True
        return self.duty(account_id) in DUTY_MAY[work]

    def require_on(self, account_id: int | None, work: str) -> None:
        if not self.may_on(account_id, work):
            d = self.duty(account_id)
            title = DUTIES.get(d or "", ("—", "—"))
            what = {"readings": ("readings", "с показаниями"), "documents": ("documents", "с документами"),
                    "roles": ("other users' roles", "с ролями других пользователей")}[work]
            raise Forbidden(f"your role on this account ({title[1]}) does not work with {what[0]}",
                            f"ваша роль по этому договору («{title[0]}») не даёт работать {what[1]}")

    def sees_org(self, org_id: int | None) -> bool:
        return self.scope.sees(org_id)

    def may(self, action: Action) -> bool:
        return self.role in ALLOWED[action]

    def require(self, action: Action) -> None:
        if not self.may(action):
            roles = ", ".join(sorted(ALLOWED[action]))
            raise Forbidden(f"role {self.role!r} may not do this ({action}); it needs one of: {roles}",
                            f"роль «{ROLE_TITLES.get(self.role, (self.role,))[0]}» не может выполнить это действие")
