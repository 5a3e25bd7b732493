// The upstream example plugin: log the type of every event the gateway receives.
import { Event, info, Plugin, Reaction, register, Subscription } from "./pdk";
export * from "./pdk/exports";

class Logger extends Plugin {
  subscriptions(): Subscription[] {
    return [Subscription.sync("eventgateway.event.received")];
  }

  react(event: Event): Reaction {
    info("received event " + event.incoming().type);
    return Reaction.continue();
  }
}

register(new Logger());
