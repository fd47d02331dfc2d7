// The local sandbox's page. It talks only to this server (/sandbox/api/...), which plays
// Telegram through the Bot API emulator: every action here becomes an update delivered to
// the bot's real webhook. Polling keeps the chat, the channel and the admin view live.
"use strict";

const WORLD_EVERY_MS = 1000;
const ADMIN_EVERY_MS = 2000;
const INVOICE_LINK = "https://t.me/$";
const INVITE_LINK = "https://t.me/+";

const page = {
  userId: Number(localStorage.getItem("sandbox.user")) || null,
  world: null,
  admin: null,
  shownMembers: [],
  payment: null,
};

const $ = (id) => document.getElementById(id);

// Re-render a part only when what it shows changed: a rebuild under the pointer would swallow a click.
const shown = {};
function changed(part, ...values) {
  const fingerprint = JSON.stringify(values);
  if (shown[part] === fingerprint) return false;
  shown[part] = fingerprint;
  return true;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (name === "class") node.className = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(`/sandbox/api/${path}`, options);
  const answer = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function toast(text, isError = false) {
  const node = el("div", {class: isError ? "toast error" : "toast"}, text);
  $("toasts").append(node);
  setTimeout(() => node.remove(), isError ? 8000 : 5000);
}

async function act(promise, describe) {
  try {
    const result = await promise;
    if (describe) toast(describe(result));
    refreshSoon();
    return result;
  } catch (error) {
    toast(error.message, true);
    return null;
  }
}

// --- time -------------------------------------------------------------------------------------

function formatDate(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString(undefined, {
    weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

function clockTime(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString(undefined, {hour: "2-digit", minute: "2-digit"});
}

function relativeToTelegram(iso) {
  if (!iso || !page.world) return "";
  const days = (Date.parse(iso) / 1000 - page.world.now) / 86400;
  const amount = Math.abs(days) >= 1 ? `${Math.round(Math.abs(days))} d` : `${Math.round(Math.abs(days) * 24)} h`;
  return days >= 0 ? `in ${amount}` : `${amount} ago`;
}

function shortDate(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, {day: "numeric", month: "short", hour: "2-digit", minute: "2-digit"}) : "";
}

// --- people -----------------------------------------------------------------------------------

function nameOf(userId) {
  const user = page.world && page.world.users.find((candidate) => candidate.id === userId);
  return user ? user.first_name : `user ${userId}`;
}

function renderUsers() {
  const {users, admins, channel} = page.world;
  const memberIds = new Set(channel.members.map((member) => member.id));
  if (!page.userId || !users.some((user) => user.id === page.userId)) {
    const buyer = users.find((user) => !admins.includes(user.id)) || users[0];
    selectUser(buyer ? buyer.id : null, false);
  }
  if (!changed("users", users, admins, [...memberIds], page.userId)) return;
  $("users").replaceChildren(...users.map((user) => el("li", {
    class: user.id === page.userId ? "selected" : "", "data-user": user.id, onclick: () => selectUser(user.id),
  },
  el("div", {class: "avatar", style: `background:${colourOf(user.id)}`}, user.first_name.slice(0, 1).toUpperCase()),
  el("div", {}, el("div", {}, user.first_name), el("div", {class: "sub"}, `id ${user.id}`)),
  el("div", {style: "margin-left:auto;display:flex;gap:4px"},
    admins.includes(user.id) ? el("span", {class: "badge admin"}, "admin") : null,
    memberIds.has(user.id) ? el("span", {class: "badge member"}, "member") : null))));
}

function colourOf(id) {
  const colours = ["#e17076", "#7bc862", "#e5ca77", "#65aadd", "#a695e7", "#ee7aae", "#6ec9cb", "#faa774"];
  return colours[id % colours.length];
}

function selectUser(userId, refresh = true) {
  page.userId = userId;
  if (userId) localStorage.setItem("sandbox.user", userId);
  if (refresh) refreshSoon();
}

// --- the chat ---------------------------------------------------------------------------------

function renderChat() {
  const {chat, bot} = page.world;
  $("bot-name").textContent = `${bot.first_name} (@${bot.username})`;
  $("chat-with").textContent = page.userId ? `bot · you are ${nameOf(page.userId)}` : "add a test user to start";
  if (!changed("chat", chat, page.userId)) return;
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const nodes = chat.flatMap((message) => renderMessage(message, bot.id));
  if (!nodes.length) {
    nodes.push(el("div", {class: "empty"}, "No messages yet.", el("br"), "Send /start to meet your bot."));
  }
  box.replaceChildren(...nodes);
  if (atBottom || nodes.length) box.scrollTop = box.scrollHeight;
}

function renderMessage(message, botId) {
  const fromBot = message.from && message.from.id === botId;
  const side = fromBot ? "in" : "out";
  const time = el("span", {class: "time"}, clockTime(message.date));
  if (message.successful_payment) {
    const paid = message.successful_payment;
    return [el("div", {class: "service"}, `You paid ${paid.total_amount} ⭐` +
      (paid.is_recurring ? " for a subscription" : "") + ` · charge ${paid.telegram_payment_charge_id.slice(0, 14)}…`)];
  }
  if (message.refunded_payment) {
    return [el("div", {class: "service"}, `${message.refunded_payment.total_amount} ⭐ refunded to you`)];
  }
  const nodes = [];
  if (message.invoice) {
    const invoice = message.invoice;
    nodes.push(el("div", {class: `bubble ${side} invoice`, "data-message": message.message_id},
      el("div", {class: "invoice-title"}, invoice.title),
      el("div", {class: "sub"}, invoice.description),
      el("div", {class: "invoice-price"}, `${invoice.total_amount} ⭐`),
      el("button", {type: "button", onclick: () => openPayment({message_id: message.message_id})},
        `Pay ${invoice.total_amount} ⭐`), time));
  } else if (message.text !== undefined) {
    nodes.push(el("div", {class: `bubble ${side}`, "data-message": message.message_id}, message.text, time));
  }
  const keyboard = message.reply_markup && message.reply_markup.inline_keyboard;
  if (keyboard) {
    nodes.push(el("div", {class: "keyboard"}, keyboard.map((row) => el("div", {class: "row"},
      row.map((button) => keyboardButton(message, button))))));
  }
  return nodes;
}

function keyboardButton(message, button) {
  if (button.callback_data !== undefined) {
    return el("button", {type: "button", onclick: () => act(api("press",
      {user_id: page.userId, message_id: message.message_id, callback_data: button.callback_data}))}, button.text);
  }
  const url = button.url || "";
  if (url.startsWith(INVOICE_LINK)) return el("button", {type: "button", onclick: () => openPayment({link: url})}, `${button.text} ⭐`);
  if (url.startsWith(INVITE_LINK)) return el("button", {type: "button", onclick: () => joinChannel(url)}, `${button.text} →`);
  return el("button", {type: "button", onclick: () => toast(`The button opens ${url}`)}, button.text);
}

async function send(text) {
  if (!page.userId) return toast("Add a test user first.", true);
  $("text").value = "";
  await act(api("send", {user_id: page.userId, text}));
}

// --- payments: the page plays Telegram's payment sheet -----------------------------------------

async function openPayment(reference) {
  const query = reference.link ? `link=${encodeURIComponent(reference.link)}` : `message_id=${reference.message_id}`;
  let invoice;
  try {
    invoice = await api(`invoice?${query}`);
  } catch (error) {
    return toast(error.message, true);
  }
  page.payment = {...reference, chat_id: page.userId};
  $("sheet-payer").replaceChildren(...page.world.users.map((user) => el("option", {
    value: user.id, selected: user.id === page.userId ? "selected" : null,
  }, user.id === page.userId ? `${user.first_name} (this chat)` : `${user.first_name}, shown it by ${nameOf(page.userId)}`)));
  $("sheet-payer").disabled = false;
  $("sheet-title").textContent = invoice.title;
  $("sheet-description").textContent = invoice.description;
  $("sheet-amount").textContent = `${invoice.amount} ⭐`;
  $("sheet-period").textContent = invoice.subscription_period ? "every 30 days, until you cancel" : "once";
  $("sheet-steps").replaceChildren(el("li", {}, "Test Stars only: nothing real is charged."));
  $("sheet-pay").textContent = `Pay ${invoice.amount} ⭐`;
  $("sheet-pay").disabled = false;
  $("sheet-pay").hidden = false;
  $("sheet-cancel").textContent = "Cancel";
  $("sheet").hidden = false;
}

async function pay() {
  const steps = $("sheet-steps");
  $("sheet-pay").disabled = true;
  $("sheet-payer").disabled = true;
  const payer = Number($("sheet-payer").value);
  const asking = el("li", {}, "Telegram asks the bot to confirm (pre_checkout_query)…");
  steps.replaceChildren(asking);
  let result;
  try {
    result = await api("pay", {...page.payment, user_id: payer});
  } catch (error) {
    asking.className = "failed";
    asking.textContent = error.message;
    $("sheet-cancel").textContent = "Close";
    return;
  }
  if (result.ok) {
    asking.className = "ok";
    asking.textContent = "✓ The bot accepted the pre-checkout query.";
    steps.append(el("li", {class: "ok"}, `✓ Paid. Telegram told the bot (successful_payment, charge ${result.charge_id.slice(0, 14)}…).`),
      el("li", {}, "The bot's receipt and invite link arrive in the chat."));
  } else {
    asking.className = "failed";
    asking.textContent = result.reason === "declined" ? `✗ The bot refused: ${result.error_message}`
      : result.reason === "no_answer" ? "✗ The bot did not answer within 10 seconds; Telegram cancelled the payment."
        : `✗ ${result.reason}`;
  }
  $("sheet-pay").hidden = true;
  $("sheet-cancel").textContent = "Close";
  refreshSoon();
}

function closePayment() {
  $("sheet").hidden = true;
  page.payment = null;
}

// --- the channel --------------------------------------------------------------------------------

const JOIN_REFUSALS = {
  link_revoked: "this invite link was revoked",
  link_expired: "this invite link has expired (by Telegram's clock)",
  member_limit_reached: "this invite link was already used by someone else",
  already_member: "you are already a member",
  banned: "you are banned from the channel",
  link_unknown: "Telegram does not know this link",
};

async function joinChannel(link) {
  const result = await act(api("join", {user_id: page.userId, invite_link: link}));
  if (!result) return;
  if (result.joined) toast(`${nameOf(page.userId)} joined the channel.`);
  else toast(`Telegram refused the join: ${JOIN_REFUSALS[result.reason] || result.reason}.`, true);
}

function renderChannel() {
  const {members} = page.world.channel;
  $("leave").disabled = !members.some((member) => member.id === page.userId);
  if (!changed("channel", members)) return;
  const before = new Set(page.shownMembers);
  $("member-count").textContent = members.length;
  $("members").replaceChildren(...members.map((member) => el("li", {
    class: before.size && !before.has(member.id) ? "fresh" : "", "data-member": member.id,
  },
  el("div", {class: "avatar", style: `width:28px;height:28px;font-size:12px;background:${colourOf(member.id)}`},
    member.name.slice(0, 1).toUpperCase()),
  el("span", {}, member.name),
  el("span", {class: "role sub"}, member.role === "owner" ? "owner" : member.role === "bot" ? "admin · bot" : "member"))));
  page.shownMembers = members.map((member) => member.id);
}

function renderClock() {
  const {now, clock_offset: offset} = page.world;
  $("clock").textContent = `Telegram's clock: ${formatDate(now)}`;
  const days = Math.round(offset / 86400);
  $("clock-offset").hidden = days < 1;
  $("clock-offset").textContent = `+${days} day${days === 1 ? "" : "s"}`;
  $("clock-warning").hidden = days < 1;
}

// --- the admin view ---------------------------------------------------------------------------

function table(id, headings, rows, emptyText) {
  const body = rows.length ? rows.map((cells) => el("tr", {}, cells.map((cell) => cell instanceof Node && cell.tagName === "TD" ? cell : el("td", {}, cell))))
    : [el("tr", {}, el("td", {class: "none", colspan: headings.length}, emptyText))];
  $(id).replaceChildren(el("thead", {}, el("tr", {}, headings.map((heading) => el("th", {}, heading)))), el("tbody", {}, body));
}

const status = (word, shown = word) => el("span", {class: `status ${word}`}, shown);

function memberState(member) {
  if (member.removed) return status("removed");
  if (Date.parse(member.expires_at) / 1000 <= page.world.now) return status("expired");
  return member.reminded ? status("reminded") : status("active");
}

function renderAdmin() {
  const data = page.admin;
  if (!data || !page.world || !changed("admin", data, Math.floor(page.world.now / 3600))) return;
  table("t-members", ["User", "Expires", "", "State"], data.members.map((member) => [
    `${member.name || "?"} (${member.user_id})`, shortDate(member.expires_at), el("span", {class: "sub"}, relativeToTelegram(member.expires_at)),
    memberState(member)]), "Nobody has paid yet.");
  table("t-payments", ["User", "Plan", "Stars", "Status", "When", "Charge", "Act as Telegram"], data.payments.map((payment) => [
    `${payment.name || "?"} (${payment.user_id})`, payment.plan_id + (payment.is_recurring ? " ↻" : ""), `${payment.stars} ⭐`,
    status(payment.status), shortDate(payment.created_at), el("span", {class: "mono", title: payment.charge_id}, `${payment.charge_id.slice(0, 16)}…`),
    el("td", {class: "actions"}, paymentButtons(payment))]), "No payments yet.");
  table("t-outbox", ["#", "Call", "Chat", "State", "Tries", "Last error"], data.outbox.map((job) => [
    job.id, el("span", {class: "mono"}, job.what), job.chat_id ?? "", status(job.status), job.attempts,
    el("span", {class: "error-text"}, job.last_error || "")]), "Nothing owed to Telegram yet.");
  table("t-updates", ["Update", "Kind", "Handled", ""], data.updates.map((update) => [
    el("span", {class: "mono"}, update.update_id), update.kind, shortDate(update.processed_at),
    el("td", {class: "actions"}, el("button", {type: "button", class: "small secondary", title: "Telegram sends this update again, same update_id",
      onclick: () => act(api("redeliver", {update_id: update.update_id}), redelivered)}, "Redeliver"))]), "No updates yet.");
  table("t-invites", ["User", "Link", "State"], data.invites.map((invite) => [
    `${invite.name || "?"} (${invite.user_id})`, el("span", {class: "mono"}, invite.link ? `${invite.link.slice(0, 22)}…` : "being made"),
    status(invite.status)]), "No invites yet.");
  table("t-dead", ["Update", "Error", "When"], data.dead_letters.map((letter) => [
    el("span", {class: "mono"}, letter.update_id), el("span", {class: "error-text"}, letter.error), shortDate(letter.created_at)]),
  "None: no handler has failed.");
}

function paymentButtons(payment) {
  if (payment.status !== "paid") return [];
  const target = {user_id: payment.user_id, charge_id: payment.charge_id};
  const buttons = [el("button", {type: "button", class: "small danger", title: "Telegram refunds the payment on its own (a dispute)",
    onclick: () => act(api("refund", target), (result) => `Refund: ${result.said}.`)}, "Refund")];
  if (payment.is_recurring) {
    buttons.push(
      el("button", {type: "button", class: "small secondary", title: "Telegram charges the next 30 days",
        onclick: () => act(api("renew", target), (result) => result.ok ? "Renewed: Telegram charged the next period." : `Renewal refused: ${result.reason}`)}, "Renew"),
      el("button", {type: "button", class: "small secondary", title: "The renewal payment fails (subscription update, state failed)",
        onclick: () => act(api("renewal_failed", target), (result) => `Failed renewal: ${result.said}.`)}, "Renewal fails"));
  }
  return buttons;
}

function redelivered(result) {
  if (result.outcome !== "acknowledged") return `Update ${result.update_id}: ${result.said}.`;
  const effect = result.answer ? "and answered again" : "with nothing to do: it is already in the ledger";
  return `Update ${result.update_id} delivered again: the server said ${result.status} ${effect}.`;
}

async function moveClock(body, label) {
  const result = await act(api("clock", body));
  if (result) showSweep(result.sweep, label);
}

function showSweep(sweep, label) {
  const report = $("sweep-report");
  if (!sweep) {
    report.hidden = true;
    return;
  }
  const names = (ids) => (ids.length ? ids.map(nameOf).join(", ") : "nobody");
  report.hidden = false;
  report.textContent = `${label}: sweep at ${formatDate(Date.parse(sweep.at) / 1000)}. Reminded ${names(sweep.reminded)}; ` +
    `removed ${names(sweep.removed)}. Watch the chat and the channel as the outbox delivers.`;
}

// --- polling ----------------------------------------------------------------------------------

let worldTimer = null;

async function refreshWorld() {
  clearTimeout(worldTimer);
  try {
    const query = page.userId ? `?user_id=${page.userId}` : "";
    page.world = await api(`world${query}`);
    renderClock();
    renderUsers();
    renderChat();
    renderChannel();
    renderAdmin();
  } catch (error) {
    $("chat-with").textContent = `Telegram emulator unreachable: ${error.message}`;
  }
  worldTimer = setTimeout(refreshWorld, WORLD_EVERY_MS);
}

async function refreshAdmin() {
  try {
    page.admin = await api("admin");
    renderAdmin();
  } catch (error) {
    // shown by the next successful poll; the chat poll reports an unreachable server
  }
  setTimeout(refreshAdmin, ADMIN_EVERY_MS);
}

function refreshSoon() {
  setTimeout(refreshWorld, 150);
  api("admin").then((data) => { page.admin = data; renderAdmin(); }).catch(() => {});
}

// --- wiring -----------------------------------------------------------------------------------

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (text) send(text);
});
$("quick").addEventListener("click", (event) => {
  if (event.target.dataset.text) send(event.target.dataset.text);
});
$("new-user").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.elements.first_name;
  const user = await act(api("users", {first_name: input.value}), (made) => `${made.first_name} (id ${made.id}) is ready.`);
  if (user) {
    input.value = "";
    selectUser(user.id);
  }
});
$("leave").addEventListener("click", () => act(api("leave", {user_id: page.userId}), () => `${nameOf(page.userId)} left the channel.`));
document.querySelectorAll("[data-days]").forEach((button) => button.addEventListener("click",
  () => moveClock({days: Number(button.dataset.days)}, button.textContent)));
$("sweep").addEventListener("click", async () => {
  const result = await act(api("sweep", {}));
  if (result) showSweep(result.sweep, "Sweep now");
});
$("today").addEventListener("click", () => moveClock({back_to_today: true}, "Back to today"));
$("sheet-pay").addEventListener("click", pay);
$("sheet-cancel").addEventListener("click", closePayment);

refreshWorld();
refreshAdmin();
